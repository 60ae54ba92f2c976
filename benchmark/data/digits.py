"""``digits``: scikit-learn's bundled handwritten digits (1797 8x8 grayscale images, 10 classes).

The embedded default data set: no download, no data directory. Pixel values 0..16 are scaled to
uint8 0..255. The test split is a fixed stratified 20% (a constant seed, never ``split_seed``);
the rest is the train pool the registry holds the val split out of. Mean and std are computed
from that train pool.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch

from benchmark.data.holdout import stratified_holdout
from benchmark.data.registry import DatasetSpec, register_dataset
from benchmark.data.types import ArrayData, DatasetInfo

TEST_FRACTION = 0.2
TEST_SPLIT_SEED = 0  # fixed: the digits test split never changes


@lru_cache(maxsize=1)
def _all_digits() -> ArrayData:
    """All 1797 images as uint8 [N, 1, 8, 8] with int64 labels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    pixels = torch.as_tensor(bunch.images, dtype=torch.float64)  # values 0..16
    images = torch.round(pixels * (255.0 / 16.0)).to(torch.uint8).unsqueeze(1)
    return ArrayData(images.contiguous(), torch.as_tensor(bunch.target, dtype=torch.int64))


@lru_cache(maxsize=1)
def _fixed_split() -> tuple[ArrayData, ArrayData]:
    """(train pool, test) by the fixed stratified 80/20 split."""
    data = _all_digits()
    train_idx, test_idx = stratified_holdout(data.labels, TEST_FRACTION, TEST_SPLIT_SEED)
    return data.subset(train_idx), data.subset(test_idx)


@lru_cache(maxsize=1)
def describe_digits() -> DatasetInfo:
    """Digits' facts; mean/std are the train pool's pixel statistics in [0, 1]."""
    pixels = _fixed_split()[0].images.double() / 255.0
    return DatasetInfo("digits", num_classes=10, image_size=8, in_chans=1,
                       mean=(float(pixels.mean()),), std=(float(pixels.std()),))


def load_digits_source(data_dir: Path | None, download: bool) -> tuple[ArrayData, ArrayData]:
    """The fixed (train pool, test) split; ``data_dir`` and ``download`` are not needed."""
    return _fixed_split()


register_dataset(DatasetSpec("digits", describe_digits, load_digits_source))
