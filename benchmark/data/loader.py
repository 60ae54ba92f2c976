"""TensorLoader: batches of a decoded split straight from uint8 tensors on the run's device.

The split is moved to the device once (through pinned memory on CUDA). Each epoch draws, from a
CPU generator seeded by (seed, epoch) only, the sample permutation and every crop corner and
flip decision up front; batches are prepared a block of several at a time (one index_select, one
pad + gather for crop/flip, one multiply-add to normalise per block, so per-op overheads are
shared) and handed out as slices. Same seed and epoch -> the same batches on any run; resuming at
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


# Pixel values prepared per step (~10 CIFAR batches of 64): few enough that the float block
# (8 MB) stays cache-friendly, many enough that per-op thread fork/joins and kernel launches are
# shared. On a busy CPU with 2 intra-op threads this is several times faster than per batch.
BLOCK_VALUES = 1 << 21


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
        end = min(len(self) * self.batch_size, self.num_samples)
        block = self._batches_per_block() * self.batch_size
        for block_start in range(0, end, block):
            block_stop = min(block_start + block, end)
            images, labels = self._prepare(order[block_start:block_stop], draw, block_start,
                                           block_stop)
            for start in range(0, block_stop - block_start, self.batch_size):
                stop = start + self.batch_size
                yield Batch(images[start:stop], labels[start:stop],
                            order[block_start + start:block_start + stop])

    def _batches_per_block(self) -> int:
        """How many batches to prepare per step: about BLOCK_VALUES pixel values, so each
        tensor op (and its thread fork/join or kernel launch) serves many batches."""
        values_per_image = int(self.images[0].numel())
        return max(1, BLOCK_VALUES // (self.batch_size * values_per_image))

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

    def _prepare(self, indices: torch.Tensor, draw: AugmentDraw | None, start: int,
                 stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Augmented, normalised images and labels of epoch positions ``start:stop``."""
        images = self.images.index_select(0, indices)
        if draw is not None:
            images = self.crop_flip(images, draw.offsets[start:stop], draw.flips[start:stop])
        return self.normalize(images), self.labels.index_select(0, indices)


def _to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Copy to ``device`` once; from pinned memory on CUDA so the copy is fast."""
    if device.type == "cuda" and tensor.device.type == "cpu":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)
