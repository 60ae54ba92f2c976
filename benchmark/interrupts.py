"""Interrupts: SIGINT (Ctrl-C) and SIGTERM stop a ``kdbench`` process cleanly.

SIGINT raises :class:`KeyboardInterrupt` (Python's default) and SIGTERM raises
:class:`Terminated`, a subclass, while :func:`handling_signals` is active. The runner catches
both around a cohort: the interrupted runs are marked KILLED in MLflow with the reason, their
leases are released, their checkpoints stay for the next run to resume from, and the exception
goes on up to the CLI, which exits with 130 (SIGINT) or 143 (SIGTERM). Worker processes of the
local executor ignore SIGINT (a terminal's Ctrl-C reaches the whole process group): the driver
forwards the interrupt to them as SIGTERM, so each worker closes its own runs.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

EXIT_SIGINT = 128 + signal.SIGINT  # 130
EXIT_SIGTERM = 128 + signal.SIGTERM  # 143


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived (raised by the handler :func:`handling_signals` installs)."""

    signal_name = "SIGTERM"


def signal_name(err: BaseException) -> str:
    return getattr(err, "signal_name", "SIGINT")


def exit_code(err: BaseException) -> int:
    """130 for Ctrl-C (SIGINT), 143 for SIGTERM."""
    return EXIT_SIGTERM if isinstance(err, Terminated) else EXIT_SIGINT


_EXCEPTIONS = {signal.SIGTERM: Terminated, signal.SIGINT: KeyboardInterrupt}
_deferral = {"depth": 0, "pending": None}


def _raise_for(signum, frame) -> None:
    """The handler: raise the signal's exception now, or after the critical section."""
    if _deferral["depth"]:
        _deferral["pending"] = _deferral["pending"] or _EXCEPTIONS[signum]
        return
    raise _EXCEPTIONS[signum]()


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """A critical section (a write to the tracking store): an interrupt arriving inside it is
    raised when it ends, so a database transaction is never torn by it."""
    _deferral["depth"] += 1
    try:
        yield
    finally:
        _deferral["depth"] -= 1
        pending = _deferral["pending"]
        if _deferral["depth"] == 0 and pending is not None:
            _deferral["pending"] = None
            raise pending()


@contextlib.contextmanager
def handling_signals(sigint: bool = True) -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` (and, with ``sigint``, SIGINT raises
    KeyboardInterrupt) inside the block, deferred past :func:`deferred` sections; the previous
    handlers come back after it. A no-op outside the main thread, where Python cannot install
    handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, _raise_for)}
    if sigint:
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, _raise_for)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def ignore_sigint() -> None:
    """Initializer of local worker processes: Ctrl-C is the driver's to handle."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
