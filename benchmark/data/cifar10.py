"""``cifar10``: CIFAR-10 from the official python pickles in ``<data_dir>/cifar-10-batches-py``.

Train: ``data_batch_1`` .. ``data_batch_5`` (50k images); test: ``test_batch`` (10k). Decoded
once into uint8 tensors and cached. ``--download`` uses torchvision's downloader.
Mean/std are the standard per-channel pixel statistics of the 50k training images.
"""

from __future__ import annotations

from pathlib import Path

from benchmark.data.cache import cached_arrays
from benchmark.data.cifar_format import read_cifar_batches
from benchmark.data.problems import (download_failed, how_to_obtain, require_data_dir,
                                     require_files)
from benchmark.data.registry import DatasetSpec, register_dataset
from benchmark.data.types import ArrayData, DatasetInfo

NAME = "cifar10"
FOLDER = "cifar-10-batches-py"
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)
INFO = DatasetInfo(NAME, num_classes=10, image_size=32, in_chans=3,
                   mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616))
OBTAIN = how_to_obtain(URL, downloadable=True)


def load_cifar10_source(data_dir: Path | None, download: bool) -> tuple[ArrayData, ArrayData]:
    """(train pool, test) of CIFAR-10, downloading first when asked and absent."""
    root = require_data_dir(NAME, data_dir)
    folder = root / FOLDER
    paths = [folder / f for f in TRAIN_FILES + TEST_FILES]
    if download and not all(p.exists() for p in paths):
        _download(root)
    require_files(NAME, paths, OBTAIN)
    return _split(root, "train", TRAIN_FILES), _split(root, "test", TEST_FILES)


def _split(root: Path, split: str, files: tuple[str, ...]) -> ArrayData:
    paths = [root / FOLDER / f for f in files]
    return cached_arrays(root, f"{NAME}-{split}-32", paths,
                         lambda: read_cifar_batches(NAME, paths, "labels", 10, OBTAIN))


def _download(root: Path) -> None:
    from torchvision.datasets import CIFAR10

    try:
        CIFAR10(root=str(root), train=True, download=True)
    except Exception as err:  # network errors, checksum mismatches, full disks
        raise download_failed(NAME, err, URL) from err


register_dataset(DatasetSpec(NAME, lambda: INFO, load_cifar10_source))
