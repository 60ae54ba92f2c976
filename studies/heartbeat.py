"""Liveness of running trials, for any storage (Optuna's own heartbeat needs an RDB storage and
``study.optimize``; studies here ask and tell, and also run on journal files).

When a process takes a trial it records itself on the trial (user attrs ``kdbench.owner`` =
``host:pid`` and ``kdbench.heartbeat`` = unix time), and a background thread refreshes the
heartbeat of its trials every ``interval`` seconds. A RUNNING trial is *stale* when its owner
ran on this host and that process no longer exists, or when its heartbeat is older than the
grace period (an owner on another machine, or a reused pid).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Optional

OWNER_ATTR = "kdbench.owner"
HEARTBEAT_ATTR = "kdbench.heartbeat"
DEFAULT_INTERVAL_S = 30.0
DEFAULT_GRACE_S = 300.0


def owner_id() -> str:
    """``host:pid`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def claim(trial) -> None:
    """Record this process as the owner of an Optuna ``Trial``, with a fresh heartbeat."""
    trial.set_user_attr(OWNER_ATTR, owner_id())
    trial.set_user_attr(HEARTBEAT_ATTR, time.time())


def _process_gone(owner: str) -> bool:
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # someone else's live process
        return False
    return False


def is_stale(trial, grace_s: float, now: Optional[float] = None) -> bool:
    """Whether a RUNNING frozen trial's process is gone (see the module docstring)."""
    now = time.time() if now is None else now
    owner = trial.user_attrs.get(OWNER_ATTR)
    if owner and owner != owner_id() and _process_gone(owner):
        return True
    beat = trial.user_attrs.get(HEARTBEAT_ATTR)
    if beat is None and trial.datetime_start is not None:
        beat = trial.datetime_start.timestamp()
    return beat is not None and now - float(beat) > grace_s


class Heartbeat:
    """A daemon thread refreshing the heartbeat of this process's running trials."""

    def __init__(self, interval_s: float = DEFAULT_INTERVAL_S):
        self.interval_s = interval_s
        self._trials: dict[int, object] = {}  # trial number -> optuna Trial
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kdbench-heartbeat", daemon=True)

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval_s + 5)

    def add(self, trial) -> None:
        with self._lock:
            self._trials[trial.number] = trial

    def remove(self, trial) -> None:
        with self._lock:
            self._trials.pop(trial.number, None)

    def beat(self) -> None:
        """Refresh every held trial now (trials finished meanwhile are dropped)."""
        import optuna

        with self._lock:
            trials = list(self._trials.values())
        for trial in trials:
            try:
                trial.set_user_attr(HEARTBEAT_ATTR, time.time())
            except (optuna.exceptions.UpdateFinishedTrialError, RuntimeError):
                self.remove(trial)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.beat()
            except Exception:  # a busy database now and then must not kill the thread
                continue
