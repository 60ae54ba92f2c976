"""Integration tests start real services (PostgreSQL, an MLflow server, a Ray cluster).

Where a service's software is missing they skip with the reason, except when
``KDBENCH_REQUIRE_SERVICES=1`` (set by ``.ci/run``, which installs PostgreSQL first): then a
missing piece is a failure, so CI can never pass by skipping them.
"""

from __future__ import annotations

import importlib
import os

import pytest


def services_required() -> bool:
    return os.environ.get("KDBENCH_REQUIRE_SERVICES") == "1"


def require_module(name: str, install: str):
    """Import ``name``; skip (or fail under KDBENCH_REQUIRE_SERVICES=1) when it is missing."""
    try:
        return importlib.import_module(name)
    except ImportError as err:
        message = f"{name} is not installed ({err}); install it with: {install}"
        if services_required():
            pytest.fail(message)
        pytest.skip(message)


def require_postgres() -> None:
    from .services import find_postgres_bindir

    try:
        find_postgres_bindir()
    except RuntimeError as err:
        if services_required():
            pytest.fail(str(err))
        pytest.skip(str(err))
