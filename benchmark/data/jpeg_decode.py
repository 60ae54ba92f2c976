"""Decode a list of image files into one uint8 [N, 3, H, W] tensor, on a few threads.

Used to decode TinyImageNet's 110k JPEGs once (the result is cached). Grayscale or CMYK files are
converted to RGB; a file that cannot be decoded or has the wrong size is a corrupt data set.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from benchmark.data.problems import corrupt_dataset


def decode_rgb_images(name: str, paths: Sequence[Path], size: int, obtain: str) -> torch.Tensor:
    """All ``paths`` decoded to RGB uint8 [N, 3, size, size]; a UserError names a bad file."""
    out = torch.empty((len(paths), 3, size, size), dtype=torch.uint8)
    target = out.numpy()

    def decode_into(index: int) -> None:
        target[index] = _decode_one(name, paths[index], size, obtain)

    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(decode_into, range(len(paths))):
            pass  # consume to re-raise the first error
    return out


def _decode_one(name: str, path: Path, size: int, obtain: str) -> np.ndarray:
    """One file -> uint8 [3, size, size]."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise corrupt_dataset(name, path, f"is not a readable image ({err})", obtain) from err
    if pixels.shape != (size, size, 3):
        raise corrupt_dataset(name, path, f"is {pixels.shape[1]}x{pixels.shape[0]}, not "
                              f"{size}x{size}", obtain)
    return pixels.transpose(2, 0, 1)
