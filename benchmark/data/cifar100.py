"""``cifar100``: CIFAR-100 from the official python pickles in ``<data_dir>/cifar-100-python``.

Train: ``train`` (50k images); test: ``test`` (10k); labels are ``fine_labels`` (100 classes).
Decoded once into uint8 tensors and cached. ``--download`` uses torchvision's downloader.
Mean/std are the ones of the CRD benchmark recipe (PROTOCOL.md §1).
"""

from __future__ import annotations

from pathlib import Path

from benchmark.data.cache import cached_arrays
from benchmark.data.cifar_format import read_cifar_batches
from benchmark.data.problems import (download_failed, how_to_obtain, require_data_dir,
                                     require_files)
from benchmark.data.registry import DatasetSpec, register_dataset
from benchmark.data.types import ArrayData, DatasetInfo

NAME = "cifar100"
FOLDER = "cifar-100-python"
URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
INFO = DatasetInfo(NAME, num_classes=100, image_size=32, in_chans=3,
                   mean=(0.5071, 0.4867, 0.4408), std=(0.2675, 0.2565, 0.2761))
OBTAIN = how_to_obtain(URL, downloadable=True)


def load_cifar100_source(data_dir: Path | None, download: bool) -> tuple[ArrayData, ArrayData]:
    """(train pool, test) of CIFAR-100, downloading first when asked and absent."""
    root = require_data_dir(NAME, data_dir)
    paths = [root / FOLDER / "train", root / FOLDER / "test"]
    if download and not all(p.exists() for p in paths):
        _download(root)
    require_files(NAME, paths, OBTAIN)
    return _split(root, "train"), _split(root, "test")


def _split(root: Path, split: str) -> ArrayData:
    path = root / FOLDER / split
    return cached_arrays(root, f"{NAME}-{split}-32", [path],
                         lambda: read_cifar_batches(NAME, [path], "fine_labels", 100, OBTAIN))


def _download(root: Path) -> None:
    from torchvision.datasets import CIFAR100

    try:
        CIFAR100(root=str(root), train=True, download=True)
    except Exception as err:  # network errors, checksum mismatches, full disks
        raise download_failed(NAME, err, URL) from err


register_dataset(DatasetSpec(NAME, lambda: INFO, load_cifar100_source))
