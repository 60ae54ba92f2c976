"""Atomic epoch checkpoints: written to a temporary file, fsynced, then renamed into place.

A run killed at any moment leaves either the previous checkpoint or the new one, never a torn
file. Loading uses ``weights_only=True``: checkpoints hold tensors and plain containers only.
A file damaged anyway (a full disk, an interrupted copy) is detected on load, moved aside with a
warning naming it, and the generation before it (``<hash>.prev.pt``) is used instead.
"""

from __future__ import annotations

import io
import os
import tempfile
import time
import warnings
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


def save_checkpoint(path: Path, state: dict[str, Any], keep_previous: bool = False) -> None:
    """Write ``state`` atomically; with ``keep_previous`` the checkpoint it replaces is kept
    as :func:`previous_path` (one generation back, for when the new one turns out unreadable)."""
    path = Path(path)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    if keep_previous and path.exists():
        os.replace(path, previous_path(path))
    atomic_write_bytes(path, buffer.getvalue())


def previous_path(path: Path) -> Path:
    """``<hash>.pt`` -> ``<hash>.prev.pt``: the generation before the current checkpoint."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def quarantine(path: Path, why: str) -> Path:
    """Move an unreadable file aside (``<name>.corrupt-<time>``, beside it) with a warning that
    names it; it is kept for inspection and never read again."""
    path = Path(path)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}-{os.getpid()}")
    os.replace(path, target)
    warnings.warn(f"kdbench: {path} is unreadable ({why}); moved it aside to {target}.",
                  CorruptFileWarning, stacklevel=2)
    return target


class CorruptFileWarning(UserWarning):
    """An unreadable store file was moved aside (and will be rebuilt)."""


def _read(path: Path, map_location) -> Optional[dict[str, Any]]:
    """The checkpoint at ``path``; an unreadable one is quarantined and gives None."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # a torn or damaged file: zip, pickle or unpickling errors
        quarantine(path, f"{type(err).__name__}: {str(err)[:200]}")
        return None
    if not isinstance(state, dict):
        quarantine(path, f"it holds {type(state).__name__}, not a checkpoint")
        return None
    return state


def load_checkpoint(path: Path, map_location=None,
                    fallback: bool = True) -> Optional[dict[str, Any]]:
    """The checkpoint at ``path``, or None when there is none. An unreadable checkpoint is moved
    aside with a warning and, with ``fallback``, the previous generation is tried next (None
    when it is missing or unreadable too: the run then restarts from scratch)."""
    path = Path(path)
    state = _read(path, map_location)
    if state is None and fallback:
        state = _read(previous_path(path), map_location)
    return state


def remove_checkpoint(path: Path) -> None:
    """Delete a checkpoint and its previous generation (either may be missing)."""
    Path(path).unlink(missing_ok=True)
    previous_path(path).unlink(missing_ok=True)


def save_stamped(path: Path, stamp: str, tensors: dict[str, Any]) -> None:
    """An atomic cache entry: ``tensors`` plus the ``stamp`` of the inputs they came from."""
    save_checkpoint(path, {"fingerprint": stamp, **tensors})


def load_stamped(path: Path, stamp: str) -> Optional[dict[str, Any]]:
    """The cache entry at ``path`` if it exists, loads and carries ``stamp``; else None (a
    stale entry is rebuilt by the caller; a damaged one is moved aside first, never fatal)."""
    entry = _read(Path(path), "cpu")  # a damaged entry is moved aside with a warning
    return entry if entry is not None and entry.get("fingerprint") == stamp else None


def safetensors_intact(path: Path) -> bool:
    """Whether a safetensors file is whole: its JSON header parses and the file is exactly as
    long as the header's largest data offset says (cheap: reads the header, not the tensors)."""
    import json
    import struct

    path = Path(path)
    try:
        with open(path, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if length <= 0 or length > 100_000_000:
                return False
            header = json.loads(handle.read(length))
    except (OSError, ValueError, struct.error):
        return False
    ends = [entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"]
    return path.stat().st_size == 8 + length + max(ends, default=0)

