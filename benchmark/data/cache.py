"""On-disk cache of decoded splits: ``<data_dir>/.kdbench-cache/<key>.pt``.

Decoding CIFAR pickles, STL-10 binaries or 100k TinyImageNet JPEGs costs seconds to minutes;
the decoded uint8 tensors are saved once with ``torch.save`` and read back with
``weights_only=True``. Each file stores a fingerprint of its source files (path, size, mtime)
and of the decoder version; a changed source or decoder rebuilds it. Writes are atomic (temporary
file + ``os.replace``), so an interrupted run never leaves a half-written cache.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Callable, Iterable


from benchmark.data.types import ArrayData

CACHE_DIR_NAME = ".kdbench-cache"
# Bump when the decoded representation changes, so old caches are rebuilt.
CACHE_FORMAT_VERSION = 1


def fingerprint(paths: Iterable[Path]) -> str:
    """A hash of each path's name, size and modification time (files or directories)."""
    digest = hashlib.sha256(f"v{CACHE_FORMAT_VERSION}".encode())
    for path in sorted(Path(p) for p in paths):
        stat = path.stat()
        digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def cache_path(data_dir: Path, key: str) -> Path:
    """Where the cache entry ``key`` lives under ``data_dir``."""
    return Path(data_dir) / CACHE_DIR_NAME / f"{key}.pt"


def cached_arrays(data_dir: Path, key: str, sources: Iterable[Path],
                  build: Callable[[], ArrayData]) -> ArrayData:
    """Return the cached split ``key`` if its fingerprint matches ``sources``; else build and save."""
    stamp = fingerprint(sources)
    path = cache_path(data_dir, key)
    cached = _read(path, stamp)
    if cached is not None:
        return cached
    data = build()
    _write(path, stamp, data)
    return data


def _read(path: Path, stamp: str) -> ArrayData | None:
    """The cached split at ``path``, or None when absent, stale or unreadable."""
    from benchmark.checkpoint import load_stamped

    entry = load_stamped(path, stamp)
    try:
        return None if entry is None else ArrayData(entry["images"], entry["labels"])
    except (KeyError, ValueError):  # a damaged cache is rebuilt, never fatal
        return None


def _write(path: Path, stamp: str, data: ArrayData) -> None:
    """Save atomically; a read-only data directory only costs the cache, with a warning."""
    from benchmark.checkpoint import save_stamped

    try:
        save_stamped(path, stamp, {"images": data.images.contiguous(),
                                   "labels": data.labels.contiguous()})
    except OSError as err:
        warnings.warn(f"kdbench: could not write the data cache {path} ({err}); "
                      f"the data set will be decoded again next time", stacklevel=2)
