"""The value types the data package hands to the rest of kdbench.

`DatasetInfo` describes a data set, `ArrayData` holds a decoded split as uint8 tensors,
`FolderData` lists the image files of a split too large to decode (ImageNet), `Splits` bundles
train/val/test, and `Batch` is what every loader yields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Union

import torch


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a data set: what a model and a loader need to know about it."""

    name: str
    num_classes: int
    image_size: int
    in_chans: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass(frozen=True)
class ArrayData:
    """A decoded split: ``images`` uint8 [N, C, H, W] and ``labels`` int64 [N]."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"images must be uint8 [N,C,H,W], got {self.images.dtype} "
                             f"{tuple(self.images.shape)}")
        if self.labels.dtype != torch.int64 or self.labels.shape != self.images.shape[:1]:
            raise ValueError(f"labels must be int64 [N={self.images.shape[0]}], got "
                             f"{self.labels.dtype} {tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, indices: torch.Tensor) -> "ArrayData":
        """The samples at ``indices`` (int64), in that order."""
        return ArrayData(self.images.index_select(0, indices), self.labels.index_select(0, indices))


@dataclass(frozen=True)
class FolderData:
    """A split kept as image files: ``samples`` is a list of (path, label); ``labels`` int64 [N]."""

    samples: tuple[tuple[str, int], ...]
    labels: torch.Tensor
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.samples)

    def subset(self, indices: torch.Tensor) -> "FolderData":
        """The samples at ``indices`` (int64), in that order."""
        picked = tuple(self.samples[i] for i in indices.tolist())
        return FolderData(picked, self.labels.index_select(0, indices), self.classes)


SplitData = Union[ArrayData, FolderData]


@dataclass(frozen=True)
class Splits:
    """Train, validation (held out of train; None when val_fraction is 0) and test splits."""

    train: SplitData
    val: SplitData | None
    test: SplitData
    info: DatasetInfo


class Batch(NamedTuple):
    """One batch on the run's device: normalised float32 images, int64 labels, int64 indices.

    ``indices`` are positions in the split the loader iterates, so per-sample state (CRD's
    memory bank) can be addressed by them.
    """

    images: torch.Tensor
    labels: torch.Tensor
    indices: torch.Tensor
