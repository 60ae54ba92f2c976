"""One inter-process lock: an exclusive ``fcntl.flock`` on a lock file, created if missing.

Used for the SQLite MLflow store, the lease table, the Optuna study files and the store's
one-at-a-time steps. flock locks belong to an open file description, so two threads of one
process exclude each other too.
"""

from __future__ import annotations

import contextlib
import fcntl
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def exclusive_lock(lock: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on the file ``lock`` for the block."""
    lock = Path(lock)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
