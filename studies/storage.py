"""Optuna storage URLs: SQLite (the default), PostgreSQL/MySQL, and journal files.

- ``sqlite:///optuna.db`` (default, in the working directory): an :class:`RDBStorage` with a long
  busy timeout so several local processes can share the file;
- ``postgresql://...`` / ``mysql+pymysql://...``: passed to Optuna's :class:`RDBStorage` as is;
- ``journal:PATH``: :class:`JournalStorage` over a :class:`JournalFileBackend` at PATH.

File-backed storages (SQLite, journal) also get a lock file beside them: ``kdbench tune``
processes on one machine take it while they count and ask trials, so together they never ask
more than the budget. Server databases have no lock file; there an over-budget trial is detected
by its rank and set aside (see :mod:`studies.budget`).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator, Optional

from benchmark.errors import user_error
from benchmark.locks import exclusive_lock  # noqa: F401  (also used by studies)
from benchmark.tracking import public_url  # noqa: F401  (one home; studies import it here)

DEFAULT_STORAGE = "sqlite:///optuna.db"
JOURNAL_PREFIX = "journal:"
SQLITE_PREFIX = "sqlite:///"
SQLITE_BUSY_TIMEOUT_S = 120
LOCK_SUFFIX = ".kdbench-lock"


def storage_url(url: Optional[str]) -> str:
    """The URL to use: the given one, or the default SQLite file."""
    return url or DEFAULT_STORAGE


def local_path(url: str) -> Optional[Path]:
    """The file behind a SQLite or journal URL; None for a database server."""
    if url.startswith(JOURNAL_PREFIX):
        return Path(url[len(JOURNAL_PREFIX):])
    if url.startswith(SQLITE_PREFIX):
        return Path(url[len(SQLITE_PREFIX):])
    return None


def absolute_storage(url: Optional[str]) -> str:
    """The storage URL with a relative SQLite or journal path made absolute (for workers that do
    not run in the driver's working directory); server URLs are unchanged."""
    url = storage_url(url)
    path = local_path(url)
    if path is None or path.is_absolute():
        return url
    prefix = JOURNAL_PREFIX if url.startswith(JOURNAL_PREFIX) else SQLITE_PREFIX
    return prefix + str(path.resolve())


def open_storage(url: Optional[str]):
    """An Optuna storage object for ``url`` (see the module docstring for the forms)."""
    import optuna

    url = storage_url(url)
    path = local_path(url)
    if url.startswith(JOURNAL_PREFIX):
        from optuna.storages.journal import JournalFileBackend

        if not path.name:
            raise user_error(f"journal storage '{url}' names no file", "--storage",
                             "write it as journal:PATH, e.g. journal:studies.log")
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(path):  # first use creates the tables; do it once
            return optuna.storages.RDBStorage(
                url, engine_kwargs={"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}})
    return _server_storage(url)


def _server_storage(url: str):
    import optuna

    if "://" not in url:
        raise user_error(f"'{url}' is not a storage URL", "--storage",
                         "use sqlite:///FILE.db, journal:FILE, or a database URL such as "
                         "postgresql://user:password@host/db")
    try:
        return _create_rdb_storage(url)
    except ImportError as err:
        raise user_error(f"the database driver for '{public_url(url)}' is not installed ({err})",
                         "--storage", "install it, e.g. `pip install psycopg2-binary` for "
                         "PostgreSQL or `pip install pymysql` for mysql+pymysql://") from None
    except Exception as err:  # connection refused, bad credentials, unknown dialect
        raise user_error(f"cannot open the study storage '{public_url(url)}': {err}",
                         "--storage", "check the URL, that the server runs and the database "
                         "exists") from None


def _create_rdb_storage(url: str, attempts: int = 5):
    """``RDBStorage(url)``; several drivers starting at once on a new database race to create
    Optuna's tables ("already exists", a unique violation): the losers try again, and then find
    the tables made."""
    import time

    import optuna
    import sqlalchemy.exc

    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as err:
            if attempt == attempts - 1 or "exist" not in str(err).lower() and \
                    "duplicate" not in str(err).lower():
                raise
            time.sleep(0.5 * (attempt + 1))




def file_lock(path: Path):
    """An exclusive lock on ``<path>.kdbench-lock`` (held for the block)."""
    return exclusive_lock(path.with_name(path.name + LOCK_SUFFIX))


@contextlib.contextmanager
def study_lock(url: str) -> Iterator[None]:
    """The local lock of a file-backed storage; nothing for a database server."""
    path = local_path(storage_url(url))
    if path is None:
        yield
        return
    with file_lock(path):
        yield
