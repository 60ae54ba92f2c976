"""The user-facing errors of the data package: a data set that is missing or unreadable.

Every message names the data set, the expected path(s) and how to obtain the data (the
official URL, or ``--download`` where torchvision has a downloader).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from benchmark.errors import UserError, user_error


def how_to_obtain(url: str, downloadable: bool) -> str:
    """The 'how to fix' sentence for a data set published at ``url``."""
    if downloadable:
        return (f"Pass --download to fetch it with torchvision's downloader, or download it "
                f"from {url} and extract it into --data-dir")
    return (f"torchvision has no downloader for it: download it from {url} and extract it "
            f"into --data-dir")


def missing_dataset(name: str, paths: Iterable[Path], obtain: str) -> UserError:
    """The error for a data set whose files are not where they must be."""
    listed = ", ".join(str(p) for p in paths)
    return user_error(f"data set '{name}' not found: expected {listed}", None, obtain)


def corrupt_dataset(name: str, path: Path, problem: str, obtain: str) -> UserError:
    """The error for a data set file that exists but cannot be read as the official format."""
    return user_error(f"data set '{name}' is corrupt: {path} {problem}", None,
                      f"Delete it and obtain a fresh copy. {obtain}")


def require_files(name: str, paths: Iterable[Path], obtain: str) -> None:
    """Raise :func:`missing_dataset` listing every path in ``paths`` that does not exist."""
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise missing_dataset(name, missing, obtain)


def require_data_dir(name: str, data_dir: Path | None) -> Path:
    """The data directory as a Path, or a UserError when a file-based data set has none."""
    if data_dir is None:
        raise user_error(f"data set '{name}' needs a data directory", "--data-dir",
                         "Pass --data-dir pointing at the folder that holds the data set")
    return Path(data_dir).expanduser()


def download_failed(name: str, err: Exception, url: str) -> UserError:
    """The error for a torchvision download that did not succeed (no network, bad checksum)."""
    return user_error(f"downloading data set '{name}' failed: {err}", url,
                      f"Check the network, or download it from {url} by hand and extract it "
                      f"into --data-dir")
