"""ImageNet-style loading from image files with torchvision's DataLoader and worker processes.

Train: RandomResizedCrop(224) + RandomHorizontalFlip; test: Resize(256) + CenterCrop(224).
Workers decode and crop to uint8; the float conversion and normalisation happen batched on the
device (uint8 crosses the host-device link, a quarter of float32's bytes). The sample order of
epoch e comes from a generator seeded by (seed, e), and each sample's random crop/flip is seeded
by (seed, e, sample index), so batches are the same whatever the number of workers.
"""

from __future__ import annotations

import math
from typing import Callable, Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from benchmark.data.normalize import Normalizer
from benchmark.data.seeding import derived_seed, epoch_generator
from benchmark.data.types import Batch, FolderData


def imagenet_transform(train: bool, image_size: int = 224) -> Callable:
    """The standard ImageNet PIL transform, ending in a uint8 [3, S, S] tensor."""
    from torchvision.transforms import v2

    if train:
        steps = [v2.RandomResizedCrop(image_size), v2.RandomHorizontalFlip()]
    else:
        steps = [v2.Resize(round(image_size * 256 / 224)), v2.CenterCrop(image_size)]
    return v2.Compose([*steps, v2.PILToTensor()])


class SeededImageFiles(Dataset):
    """Item i: (uint8 image, label, i), its random transform seeded by (seed, epoch, i)."""

    def __init__(self, data: FolderData, transform: Callable, seed: int) -> None:
        self.data, self.transform, self.seed, self.epoch = data, transform, seed, 0

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        from PIL import Image

        path, label = self.data.samples[index]
        with Image.open(path) as image:
            rgb = image.convert("RGB")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derived_seed(self.seed, "sample", self.epoch, index))
            pixels = self.transform(rgb)
        return pixels, label, index


class ImageFolderLoader:
    """Iterates a :class:`FolderData` split as :class:`Batch` es on ``device``."""

    def __init__(self, data: FolderData, batch_size: int, *, train: bool, seed: int,
                 mean: Sequence[float], std: Sequence[float], device: torch.device | str = "cpu",
                 num_workers: int = 8, shuffle: bool | None = None, drop_last: bool = False,
                 image_size: int = 224) -> None:
        self.device = torch.device(device)
        self.dataset = SeededImageFiles(data, imagenet_transform(train, image_size), int(seed))
        self.batch_size, self.num_workers = int(batch_size), int(num_workers)
        self.shuffle = train if shuffle is None else bool(shuffle)
        self.seed, self.drop_last, self.epoch = int(seed), bool(drop_last), 0
        self.normalize = Normalizer(mean, std, self.device)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order and augmentation the next iteration uses."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        count = len(self.dataset)
        return count // self.batch_size if self.drop_last else math.ceil(count / self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        self.dataset.epoch = self.epoch
        count = len(self.dataset)
        order = (torch.randperm(count, generator=epoch_generator(self.seed, self.epoch))
                 if self.shuffle else torch.arange(count))
        loader = DataLoader(self.dataset, batch_size=self.batch_size, sampler=order.tolist(),
                            num_workers=self.num_workers, drop_last=self.drop_last,
                            pin_memory=self.device.type == "cuda",
                            generator=epoch_generator(self.seed, self.epoch, "workers"))
        for images, labels, indices in loader:
            yield Batch(self.normalize(images.to(self.device, non_blocking=True)),
                        labels.to(self.device, non_blocking=True),
                        indices.to(self.device, non_blocking=True))


def imagenet_loader(data: FolderData, batch_size: int, *, train: bool, seed: int,
                    mean: Sequence[float], std: Sequence[float], device: torch.device | str = "cpu",
                    num_workers: int = 8, shuffle: bool | None = None, drop_last: bool = False,
                    image_size: int = 224) -> ImageFolderLoader:
    """A loader over ImageNet-style image files yielding :class:`Batch` es (see module doc)."""
    return ImageFolderLoader(data, batch_size, train=train, seed=seed, mean=mean, std=std,
                             device=device, num_workers=num_workers, shuffle=shuffle,
                             drop_last=drop_last, image_size=image_size)
