"""``imagenet``: ILSVRC-2012 class folders ``<data_dir>/imagenet/{train,val}/<wnid>/*.JPEG``.

Too large to decode into memory: its splits are :class:`FolderData` (file lists scanned with
torchvision's ImageFolder) and :func:`benchmark.data.imagenet_loader.imagenet_loader` reads them
with DataLoader workers. ``val`` (50k images, sorted into class folders) is the test split;
kdbench's val split is held out of train. torchvision has no downloader for it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from benchmark.data.problems import (corrupt_dataset, how_to_obtain, missing_dataset,
                                     require_data_dir, require_files)
from benchmark.data.registry import DatasetSpec, register_dataset
from benchmark.data.types import DatasetInfo, FolderData

NAME = "imagenet"
FOLDER = "imagenet"
URL = "https://image-net.org/download-images.php (ILSVRC2012, val sorted into class folders)"
INFO = DatasetInfo(NAME, num_classes=1000, image_size=224, in_chans=3,
                   mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
OBTAIN = how_to_obtain(URL, downloadable=False)


def scan_folder(folder: Path) -> FolderData:
    """Every image under ``folder/<class>/`` with its class index (sorted class names)."""
    from torchvision.datasets import ImageFolder

    try:
        found = ImageFolder(str(folder), allow_empty=False)
    except FileNotFoundError as err:
        raise missing_dataset(NAME, [folder / "<wnid>" / "*.JPEG"], OBTAIN) from err
    labels = torch.tensor(found.targets, dtype=torch.int64)
    return FolderData(tuple(found.samples), labels, tuple(found.classes))


def load_imagenet_source(data_dir: Path | None, download: bool) -> tuple[FolderData, FolderData]:
    """(train pool, test = official val) as file lists; ``download`` is not available."""
    root = require_data_dir(NAME, data_dir)
    train_dir, val_dir = root / FOLDER / "train", root / FOLDER / "val"
    require_files(NAME, [train_dir, val_dir], OBTAIN)
    train, test = scan_folder(train_dir), scan_folder(val_dir)
    if train.classes != test.classes:
        raise corrupt_dataset(NAME, val_dir, f"has {len(test.classes)} class folders that differ "
                              f"from the {len(train.classes)} of {train_dir}", OBTAIN)
    return train, test


register_dataset(DatasetSpec(NAME, lambda: INFO, load_imagenet_source))
