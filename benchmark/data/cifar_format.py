"""Reader for the official CIFAR-10/100 "python version" pickles, shared by both data sets.

Each pickle holds a dict with ``data`` (uint8 [N, 3072], row-major 3x32x32, channels R,G,B)
and a label list (``labels`` for CIFAR-10, ``fine_labels`` for CIFAR-100). The official files
were written by Python 2, hence ``encoding="latin1"``. Like torchvision, this unpickles files
from the data directory: only point --data-dir at data you trust.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from benchmark.data.problems import corrupt_dataset
from benchmark.data.types import ArrayData

CIFAR_IMAGE_BYTES = 3 * 32 * 32


def read_cifar_batches(name: str, paths: Sequence[Path], label_key: str, num_classes: int,
                       obtain: str) -> ArrayData:
    """Decode and concatenate CIFAR pickle files into one split."""
    parts = [_read_one(name, path, label_key, num_classes, obtain) for path in paths]
    images = torch.cat([p.images for p in parts]) if len(parts) > 1 else parts[0].images
    labels = torch.cat([p.labels for p in parts]) if len(parts) > 1 else parts[0].labels
    return ArrayData(images.contiguous(), labels.contiguous())


def _read_one(name: str, path: Path, label_key: str, num_classes: int, obtain: str) -> ArrayData:
    """One pickle file -> ArrayData, with a UserError for anything not in the official format."""
    entry = _unpickle(name, path, obtain)
    if not isinstance(entry, dict) or "data" not in entry or label_key not in entry:
        raise corrupt_dataset(name, path, f"has no 'data' and '{label_key}' entries", obtain)
    data = np.asarray(entry["data"])
    labels = np.asarray(entry[label_key])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != CIFAR_IMAGE_BYTES:
        raise corrupt_dataset(name, path, f"holds data of shape {data.shape} and type "
                              f"{data.dtype}, not uint8 [N, {CIFAR_IMAGE_BYTES}]", obtain)
    if labels.shape != (data.shape[0],):
        raise corrupt_dataset(name, path, f"holds {labels.size} labels for {data.shape[0]} "
                              f"images", obtain)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise corrupt_dataset(name, path, f"holds labels outside 0..{num_classes - 1}", obtain)
    images = torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())
    return ArrayData(images, torch.from_numpy(labels.astype(np.int64)))


def _unpickle(name: str, path: Path, obtain: str) -> object:
    """``pickle.load`` the file, turning any decoding failure into a corrupt-data-set error."""
    try:
        with open(path, "rb") as handle:
            return pickle.load(handle, encoding="latin1")
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            ImportError, IndexError, KeyError, UnicodeDecodeError) as err:
        raise corrupt_dataset(name, path, f"is not a readable CIFAR pickle ({err})", obtain) from err
