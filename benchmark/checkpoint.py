"""Atomic epoch checkpoints: written to a temporary file, fsynced, then renamed into place.

A run killed at any moment leaves either the previous checkpoint or the new one, never a torn
file. Loading uses ``weights_only=True``: checkpoints hold tensors and plain containers only.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any, Optional

import torch



def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())


def load_checkpoint(path: Path, map_location=None) -> Optional[dict[str, Any]]:
    """The checkpoint at ``path``, or None when there is none."""
    path = Path(path)
    if not path.exists():
        return None
    return torch.load(path, map_location=map_location, weights_only=True)


def remove_checkpoint(path: Path) -> None:
    Path(path).unlink(missing_ok=True)


def save_stamped(path: Path, stamp: str, tensors: dict[str, Any]) -> None:
    """An atomic cache entry: ``tensors`` plus the ``stamp`` of the inputs they came from."""
    save_checkpoint(path, {"fingerprint": stamp, **tensors})


def load_stamped(path: Path, stamp: str) -> Optional[dict[str, Any]]:
    """The cache entry at ``path`` if it exists, loads and carries ``stamp``; else None (a
    damaged or stale entry is rebuilt by the caller, never fatal)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        entry = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return None
    return entry if isinstance(entry, dict) and entry.get("fingerprint") == stamp else None
