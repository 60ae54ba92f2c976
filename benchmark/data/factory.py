"""One call to get the right loader for any split: TensorLoader for decoded splits (digits,
CIFAR, STL-10, TinyImageNet), the DataLoader path for file-backed ones (ImageNet)."""

from __future__ import annotations

import torch

from benchmark.data.augment import Augment
from benchmark.data.imagenet_loader import ImageFolderLoader, imagenet_loader
from benchmark.data.loader import TensorLoader
from benchmark.data.types import ArrayData, DatasetInfo, FolderData, SplitData


def make_loader(data: SplitData, info: DatasetInfo, batch_size: int, *, train: bool, seed: int,
                device: torch.device | str = "cpu", augment: Augment | None = None,
                drop_last: bool = False, num_workers: int = 8
                ) -> TensorLoader | ImageFolderLoader:
    """A train loader (shuffled, ``augment`` applied) or an evaluation loader (in order, no
    augmentation) over ``data``, normalised with ``info``'s mean/std.

    ``augment`` only applies to decoded splits; ImageNet's train transform is fixed.
    ``num_workers`` only applies to file-backed splits.
    """
    if isinstance(data, ArrayData):
        return TensorLoader(data, batch_size, shuffle=train, seed=seed,
                            augment=augment if train else None, mean=info.mean, std=info.std,
                            device=device, drop_last=drop_last)
    if isinstance(data, FolderData):
        return imagenet_loader(data, batch_size, train=train, seed=seed, mean=info.mean,
                               std=info.std, device=device, num_workers=num_workers,
                               drop_last=drop_last, image_size=info.image_size)
    raise TypeError(f"cannot load batches from {type(data).__name__}")
