"""On-disk cache of embeddings: ``<store>/embeddings/<source run id>-<target>.pt``
(:meth:`benchmark.store.Store.embeddings` names the file).

Extracting embeddings runs the network over the whole target (100k images for TinyImageNet);
training the probe on them takes seconds. So each (source run, target) pair is extracted once.
An entry stores a fingerprint of everything the embeddings depend on: the sha256 of the weights
file (a retrained or replaced network invalidates it), the architecture, the normalisation, a
digest of the target's pixels and labels, and the extraction version. A stale, damaged or
foreign entry is recomputed, never trusted. Writes are atomic (temporary file + rename).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from benchmark.checkpoint import load_stamped, save_stamped

# Bump when what is extracted changes (tap, dtype, preprocessing), so old entries are rebuilt.
EXTRACTION_VERSION = 1


@dataclass(frozen=True)
class Embeddings:
    """Probe-train and scored-split embeddings with their labels (CPU tensors)."""

    train: torch.Tensor
    train_labels: torch.Tensor
    test: torch.Tensor
    test_labels: torch.Tensor

    @property
    def dim(self) -> int:
        return int(self.train.shape[1])


def data_digest(*tensors: torch.Tensor) -> str:
    """sha256 of the tensors' bytes, shapes and dtypes (identifies a target split exactly)."""
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(f"{tuple(tensor.shape)}|{tensor.dtype}\n".encode())
        digest.update(tensor.contiguous().numpy().tobytes())
    return digest.hexdigest()


def fingerprint(weights_sha256: str, arch: str, mean, std, target_digest: str) -> str:
    """The key an entry must carry to be used."""
    payload = {"weights_sha256": weights_sha256, "arch": arch, "mean": list(mean),
               "std": list(std), "target": target_digest, "version": EXTRACTION_VERSION}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def cached_embeddings(path: Path, stamp: str, compute: Callable[[], Embeddings]
                      ) -> tuple[Embeddings, bool]:
    """(embeddings, whether they came from the cache): the entry if its stamp matches, else
    ``compute()`` saved under ``stamp``."""
    entry = read_entry(path, stamp)
    if entry is not None:
        return entry, True
    embeddings = compute()
    write_entry(path, stamp, embeddings)
    return embeddings, False


def read_entry(path: Path, stamp: str) -> Embeddings | None:
    """The entry at ``path`` if it exists, loads and carries ``stamp``; else None."""
    entry = load_stamped(path, stamp)
    try:
        return None if entry is None else Embeddings(
            entry["train"], entry["train_labels"], entry["test"], entry["test_labels"])
    except KeyError:  # a damaged entry is recomputed, never fatal
        return None


def write_entry(path: Path, stamp: str, embeddings: Embeddings) -> None:
    save_stamped(path, stamp, {"train": embeddings.train.contiguous(),
                               "train_labels": embeddings.train_labels.contiguous(),
                               "test": embeddings.test.contiguous(),
                               "test_labels": embeddings.test_labels.contiguous()})
