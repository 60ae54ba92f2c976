"""Held-out digits variants: the transfer probe's CPU-sized stand-in for STL-10 / TinyImageNet.

Digits students are trained on the train pool of scikit-learn's digits; their test split (360
images, a fixed stratified 20%) is never trained on. A variant takes that test split, transforms
it deterministically so it is a *shifted distribution* the student never saw, and splits it into
stratified probe-train / probe-test halves with a fixed seed:

- ``digits-shifted``: every image moved one pixel down and one right (zero fill, no wrap);
- ``digits-inverted``: inverted contrast (``255 - x``);
- ``digits-shifted-inverted``: both.

Nothing is registered in :mod:`benchmark.data`; the probe asks for these names directly.
"""

from __future__ import annotations

from typing import Callable

import torch

from benchmark.data import ArrayData, load_splits
from benchmark.data.holdout import stratified_holdout

SHIFT_PIXELS = (1, 1)  # (down, right)
PROBE_SPLIT_SEED = 0  # fixed: the probe halves never change
PROBE_TEST_FRACTION = 0.5


def shift_images(images: torch.Tensor, down: int, right: int) -> torch.Tensor:
    """uint8 [N, C, H, W] moved ``down`` rows and ``right`` columns; vacated pixels are 0."""
    shifted = torch.zeros_like(images)
    height, width = images.shape[-2:]
    shifted[..., down:, right:] = images[..., :height - down, :width - right]
    return shifted


def invert_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 images with inverted contrast (``255 - x``)."""
    return 255 - images


def _shift(images: torch.Tensor) -> torch.Tensor:
    return shift_images(images, *SHIFT_PIXELS)


def _shift_invert(images: torch.Tensor) -> torch.Tensor:
    return invert_images(_shift(images))


VARIANTS: dict[str, tuple[str, Callable[[torch.Tensor], torch.Tensor]]] = {
    "digits-shifted": ("digits test split shifted one pixel down and right", _shift),
    "digits-inverted": ("digits test split with inverted contrast", invert_images),
    "digits-shifted-inverted": ("digits test split shifted one pixel and inverted",
                                _shift_invert),
}


def load_digits_variant(name: str) -> tuple[ArrayData, ArrayData]:
    """(probe-train, probe-test): the transformed digits test split, halved stratified."""
    _, transform = VARIANTS[name]
    held_out = load_splits("digits", None, val_fraction=0).test
    images = transform(held_out.images).contiguous()
    train_idx, test_idx = stratified_holdout(held_out.labels, PROBE_TEST_FRACTION,
                                             PROBE_SPLIT_SEED)
    data = ArrayData(images, held_out.labels)
    return data.subset(train_idx), data.subset(test_idx)
