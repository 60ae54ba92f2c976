"""``tinyimagenet`` (64x64) and ``tinyimagenet_32`` (resized to 32x32 for the transfer probe).

Reads the official folders in ``<data_dir>/tiny-imagenet-200``: ``wnids.txt`` (200 class ids),
``train/<wnid>/images/*.JPEG`` (500 per class) and ``val/images/*.JPEG`` labelled by
``val/val_annotations.txt`` (file, wnid, box). The labelled ``val`` folder is this data set's
test split (the official test images carry no labels); kdbench's own val split is held out of
train. Class indices follow the sorted wnids. JPEGs are decoded once and cached; the cache is
keyed by the annotation files and the image folders' sizes and modification times. torchvision
has no downloader for it. Mean/std are the per-channel pixel statistics of the training images.
"""

from __future__ import annotations

from pathlib import Path

import torch

from benchmark.data.cache import cached_arrays
from benchmark.data.jpeg_decode import decode_rgb_images
from benchmark.data.problems import (corrupt_dataset, how_to_obtain, missing_dataset,
                                     require_data_dir, require_files)
from benchmark.data.registry import DatasetSpec, register_dataset
from benchmark.data.resize import resize_data
from benchmark.data.types import ArrayData, DatasetInfo

NAME = "tinyimagenet"
FOLDER = "tiny-imagenet-200"
URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
NATIVE_SIZE = 64
MEAN = (0.4802, 0.4481, 0.3975)
STD = (0.2770, 0.2691, 0.2821)
OBTAIN = how_to_obtain(URL, downloadable=False)


def read_wnids(root: Path) -> list[str]:
    """The sorted class ids of ``wnids.txt``."""
    path = root / FOLDER / "wnids.txt"
    wnids = sorted({line.strip() for line in path.read_text().splitlines() if line.strip()})
    if not wnids:
        raise corrupt_dataset(NAME, path, "lists no class ids", OBTAIN)
    return wnids


def train_files(root: Path, wnids: list[str]) -> tuple[list[Path], list[int]]:
    """Every training JPEG with its class index, class by class in sorted order."""
    folders = [root / FOLDER / "train" / wnid / "images" for wnid in wnids]
    require_files(NAME, folders, OBTAIN)
    paths, labels = [], []
    for label, folder in enumerate(folders):
        files = sorted(folder.glob("*.JPEG"))
        if not files:
            raise missing_dataset(NAME, [folder / "*.JPEG"], OBTAIN)
        paths += files
        labels += [label] * len(files)
    return paths, labels


def val_files(root: Path, wnids: list[str]) -> tuple[list[Path], list[int]]:
    """Every labelled val JPEG with its class index, in annotation-file order."""
    annotations = root / FOLDER / "val" / "val_annotations.txt"
    index = {wnid: i for i, wnid in enumerate(wnids)}
    paths, labels = [], []
    for number, line in enumerate(annotations.read_text().splitlines(), start=1):
        fields = line.split("\t")
        if not line.strip():
            continue
        if len(fields) < 2 or fields[1] not in index:
            raise corrupt_dataset(NAME, annotations, f"line {number} does not name a file and "
                                  f"a class id of wnids.txt", OBTAIN)
        paths.append(root / FOLDER / "val" / "images" / fields[0])
        labels.append(index[fields[1]])
    require_files(NAME, paths, OBTAIN)
    return paths, labels


def _decode(paths: list[Path], labels: list[int]) -> ArrayData:
    images = decode_rgb_images(NAME, paths, NATIVE_SIZE, OBTAIN)
    return ArrayData(images, torch.tensor(labels, dtype=torch.int64))


def _fingerprint_sources(root: Path, wnids: list[str]) -> list[Path]:
    """Annotation files and image folders: adding, removing or renaming an image changes them."""
    base = root / FOLDER
    require_files(NAME, [base / "train" / wnid / "images" for wnid in wnids], OBTAIN)
    return [base / "wnids.txt", base / "val" / "val_annotations.txt", base / "val" / "images",
            *[base / "train" / wnid / "images" for wnid in wnids]]


def _native_split(root: Path, split: str, wnids: list[str]) -> ArrayData:
    def build() -> ArrayData:
        lister = train_files if split == "train" else val_files
        return _decode(*lister(root, wnids))
    return cached_arrays(root, f"{NAME}-{split}-{NATIVE_SIZE}",
                         _fingerprint_sources(root, wnids), build)


def _sized_split(root: Path, split: str, size: int, wnids: list[str]) -> ArrayData:
    if size == NATIVE_SIZE:
        return _native_split(root, split, wnids)
    return cached_arrays(root, f"{NAME}-{split}-{size}", _fingerprint_sources(root, wnids),
                         lambda: resize_data(_native_split(root, split, wnids), size))


def _source_loader(size: int):
    """The (data_dir, download) -> (train pool, test = official val) loader at ``size``."""
    def load(data_dir: Path | None, download: bool) -> tuple[ArrayData, ArrayData]:
        root = require_data_dir(NAME, data_dir)
        base = root / FOLDER
        require_files(NAME, [base / "wnids.txt", base / "train",
                             base / "val" / "val_annotations.txt", base / "val" / "images"], OBTAIN)
        wnids = read_wnids(root)
        return _sized_split(root, "train", size, wnids), _sized_split(root, "val", size, wnids)
    return load


def _register(name: str, size: int) -> None:
    info = DatasetInfo(name, num_classes=200, image_size=size, in_chans=3, mean=MEAN, std=STD)
    register_dataset(DatasetSpec(name, lambda: info, _source_loader(size)))


_register(NAME, NATIVE_SIZE)
_register(f"{NAME}_32", 32)
