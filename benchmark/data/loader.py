"""TensorLoader: batches of a decoded split straight from uint8 tensors on the run's device.

The split is moved to the device once (through pinned memory on CUDA). Each epoch draws, from a
CPU generator seeded by (seed, epoch) only, the sample permutation and every crop corner and
flip decision up front; each batch is then one index_select, one pad + gather for crop/flip and
one multiply-add to normalise. Same seed and epoch -> the same batches on any run; resuming at
an epoch boundary (``set_epoch``) reproduces the stream.
"""

from __future__ import annotations

import math
from typing import Iterator, Sequence

import torch

from benchmark.data.augment import Augment, AugmentDraw, CropFlip, draw_augmentation
from benchmark.data.normalize import Normalizer
from benchmark.data.seeding import epoch_generator
from benchmark.data.types import ArrayData, Batch


class TensorLoader:
    """Iterates an :class:`ArrayData` split as :class:`Batch` es on ``device``."""

    def __init__(self, data: ArrayData, batch_size: int, *, shuffle: bool, seed: int,
                 augment: Augment | None, mean: Sequence[float], std: Sequence[float],
                 device: torch.device | str = "cpu", drop_last: bool = False) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        self.shuffle, self.seed, self.drop_last = bool(shuffle), int(seed), bool(drop_last)
        self.augment = None if augment is None or augment.is_identity else augment
        self.epoch = 0
        self.images = _to_device(data.images, self.device)
        self.labels = _to_device(data.labels, self.device)
        self.normalize = Normalizer(mean, std, self.device)
        _, _, height, width = data.images.shape
        self.crop_flip = (CropFlip(height, width, self.augment.crop_padding, self.device)
                          if self.augment else None)

    @property
    def num_samples(self) -> int:
        return int(self.labels.shape[0])

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose permutation and augmentation the next iteration uses."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_samples // self.batch_size
        return math.ceil(self.num_samples / self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        order, draw = self.epoch_plan()
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            stop = min(start + self.batch_size, self.num_samples)
            yield self._batch(order[start:stop], draw, start, stop)

    def epoch_plan(self) -> tuple[torch.Tensor, AugmentDraw | None]:
        """The current epoch's sample order and its augmentation choices (indexed by position
        in that order, None without augmentation), on the device. Depends on (seed, epoch) only.
        """
        generator = epoch_generator(self.seed, self.epoch)
        count = self.num_samples
        order = torch.randperm(count, generator=generator) if self.shuffle else torch.arange(count)
        draw = draw_augmentation(count, self.augment, generator) if self.augment else None
        if draw is not None:
            draw = AugmentDraw(draw.offsets.to(self.device), draw.flips.to(self.device))
        return order.to(self.device), draw

    def _batch(self, indices: torch.Tensor, draw: AugmentDraw | None, start: int,
               stop: int) -> Batch:
        images = self.images.index_select(0, indices)
        if draw is not None:
            images = self.crop_flip(images, draw.offsets[start:stop], draw.flips[start:stop])
        labels = self.labels.index_select(0, indices)
        return Batch(self.normalize(images), labels, indices)


def _to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Copy to ``device`` once; from pinned memory on CUDA so the copy is fast."""
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)
