"""``stl10`` (96x96) and ``stl10_32`` (resized to 32x32 for the transfer probe, PROTOCOL §4).

Reads the official binaries in ``<data_dir>/stl10_binary``: ``train_X.bin`` / ``test_X.bin``
hold uint8 images of 3x96x96 stored column-major (each channel is transposed), ``train_y.bin``
/ ``test_y.bin`` hold one uint8 label 1..10 per image. 5k train, 8k test; the unlabelled split
is not used. Native images are cached; the 32x32 variant is resized once from them and cached
too. ``--download`` uses torchvision's downloader. Mean/std are the per-channel pixel statistics
of the 5k training images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from benchmark.data.cache import cached_arrays
from benchmark.data.problems import (corrupt_dataset, download_failed, how_to_obtain,
                                     require_data_dir, require_files)
from benchmark.data.registry import DatasetSpec, register_dataset
from benchmark.data.resize import resize_data
from benchmark.data.types import ArrayData, DatasetInfo

NAME = "stl10"
FOLDER = "stl10_binary"
URL = "https://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz"
NATIVE_SIZE = 96
NUM_CLASSES = 10
IMAGE_BYTES = 3 * NATIVE_SIZE * NATIVE_SIZE
MEAN = (0.4467, 0.4398, 0.4066)
STD = (0.2603, 0.2566, 0.2713)
OBTAIN = how_to_obtain(URL, downloadable=True)


def split_files(root: Path, split: str) -> tuple[Path, Path]:
    """(images, labels) binary paths of ``split`` ("train" or "test")."""
    return root / FOLDER / f"{split}_X.bin", root / FOLDER / f"{split}_y.bin"


def read_stl10_split(images_path: Path, labels_path: Path) -> ArrayData:
    """Decode one split's binaries: images uint8 [N, 3, 96, 96], labels 0..9."""
    raw = np.fromfile(images_path, dtype=np.uint8)
    labels = np.fromfile(labels_path, dtype=np.uint8).astype(np.int64)
    if raw.size == 0 or raw.size % IMAGE_BYTES:
        raise corrupt_dataset(NAME, images_path, f"has {raw.size} bytes, not a multiple of "
                              f"{IMAGE_BYTES} (3x96x96 images)", OBTAIN)
    count = raw.size // IMAGE_BYTES
    if labels.size != count:
        raise corrupt_dataset(NAME, labels_path, f"has {labels.size} labels for {count} images",
                              OBTAIN)
    if labels.min() < 1 or labels.max() > NUM_CLASSES:
        raise corrupt_dataset(NAME, labels_path, f"has labels outside 1..{NUM_CLASSES}", OBTAIN)
    # column-major storage: swap the two spatial axes to get row-major [C, H, W]
    images = raw.reshape(count, 3, NATIVE_SIZE, NATIVE_SIZE).transpose(0, 1, 3, 2)
    return ArrayData(torch.from_numpy(np.ascontiguousarray(images)),
                     torch.from_numpy(labels - 1))


def _native_split(root: Path, split: str) -> ArrayData:
    paths = split_files(root, split)
    return cached_arrays(root, f"{NAME}-{split}-{NATIVE_SIZE}", paths,
                         lambda: read_stl10_split(*paths))


def _sized_split(root: Path, split: str, size: int) -> ArrayData:
    if size == NATIVE_SIZE:
        return _native_split(root, split)
    return cached_arrays(root, f"{NAME}-{split}-{size}", split_files(root, split),
                         lambda: resize_data(_native_split(root, split), size))


def _download(root: Path) -> None:
    from torchvision.datasets import STL10

    try:
        STL10(root=str(root), split="train", download=True)
    except Exception as err:  # network errors, checksum mismatches, full disks
        raise download_failed(NAME, err, URL) from err


def _source_loader(size: int):
    """The (data_dir, download) -> (train pool, test) loader at image size ``size``."""
    def load(data_dir: Path | None, download: bool) -> tuple[ArrayData, ArrayData]:
        root = require_data_dir(NAME, data_dir)
        paths = [*split_files(root, "train"), *split_files(root, "test")]
        if download and not all(p.exists() for p in paths):
            _download(root)
        require_files(NAME, paths, OBTAIN)
        return _sized_split(root, "train", size), _sized_split(root, "test", size)
    return load


def _register(name: str, size: int) -> None:
    info = DatasetInfo(name, num_classes=NUM_CLASSES, image_size=size, in_chans=3,
                       mean=MEAN, std=STD)
    register_dataset(DatasetSpec(name, lambda: info, _source_loader(size)))


_register(NAME, NATIVE_SIZE)
_register(f"{NAME}_32", 32)
