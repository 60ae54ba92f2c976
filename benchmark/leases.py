"""Leases: exactly one driver trains a run (a config hash) at a time, across processes, Ray
tasks and machines that share the store.

A lease is the file ``<store>/leases/<config_hash>.json`` (:meth:`benchmark.store.Store.lease`)
holding its owner (host, pid and a random token), when it was taken and its last heartbeat.
Every operation happens under one file lock (``<store>/locks/leases.lock``), so two drivers
asking at once get one answer. A lease is *live* while its heartbeat is younger than its TTL and,
on the owner's own host, while the owner process exists; a dead owner's lease (SIGKILL, a lost
node) is *expired* and the next driver takes it over and resumes the run from its checkpoint.
Holders refresh their heartbeats from a background thread every TTL/4 seconds and release their
leases when the run ends, fails or is interrupted.

The TTL defaults to 60 s (``$KDBENCH_LEASE_TTL`` overrides it, e.g. for tests).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Optional

from benchmark.checkpoint import atomic_write_bytes
from benchmark.locks import exclusive_lock
from benchmark.store import Store

DEFAULT_TTL_S = 60.0
TTL_ENV = "KDBENCH_LEASE_TTL"


def lease_ttl() -> float:
    try:
        return max(0.5, float(os.environ.get(TTL_ENV, DEFAULT_TTL_S)))
    except ValueError:
        return DEFAULT_TTL_S


@dataclass(frozen=True)
class LeaseInfo:
    """The content of a lease file."""

    config_hash: str
    host: str
    pid: int
    token: str
    acquired: float
    heartbeat: float
    ttl: float

    def describe(self) -> str:
        age = time.time() - self.heartbeat
        return f"{self.host} pid {self.pid} (heartbeat {age:.0f} s ago)"

    def is_live(self, now: Optional[float] = None) -> bool:
        """Held by a process that is alive: a fresh heartbeat, and on this host a running pid."""
        now = time.time() if now is None else now
        if now - self.heartbeat > self.ttl:
            return False
        if self.host == socket.gethostname():
            return _pid_alive(self.pid)
        return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class Leases:
    """The leases this process holds on one store (use as a context manager)."""

    def __init__(self, store: str | os.PathLike, ttl: Optional[float] = None):
        self.store = Store(store)
        self.ttl = lease_ttl() if ttl is None else ttl
        self.token = uuid.uuid4().hex
        self.held: set[str] = set()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    # ----- reading -----
    def read(self, config_hash: str) -> Optional[LeaseInfo]:
        path = self.store.lease(config_hash)
        try:
            return LeaseInfo(**json.loads(path.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError):  # a torn or foreign file: nobody holds it
            return None

    def holder(self, config_hash: str) -> Optional[LeaseInfo]:
        """The live lease of another owner on ``config_hash``, or None."""
        info = self.read(config_hash)
        if info is None or info.token == self.token or not info.is_live():
            return None
        return info

    # ----- taking and giving back -----
    def acquire(self, config_hash: str) -> Optional[LeaseInfo]:
        """Take the lease (free, expired, or already ours): None on success, else the live
        holder's lease."""
        with self._locked():
            current = self.read(config_hash)
            if current is not None and current.token != self.token and current.is_live():
                return current
            self._write(config_hash, acquired=time.time())
            self.held.add(config_hash)
        self._start_heartbeat()
        return None

    def release(self, config_hash: str) -> None:
        with self._locked():
            current = self.read(config_hash)
            if current is not None and current.token == self.token:
                self.store.lease(config_hash).unlink(missing_ok=True)
            self.held.discard(config_hash)

    def prune(self) -> list[str]:
        """Delete the leases of dead owners (a killed driver's, whose runs another driver has
        finished since); the hashes pruned."""
        pruned = []
        with self._locked():
            for path in self.store.leases_dir.glob("*.json"):
                info = self.read(path.stem)
                if info is None or (info.token != self.token and not info.is_live()):
                    path.unlink(missing_ok=True)
                    pruned.append(path.stem)
        return pruned

    def release_all(self) -> None:
        for config_hash in list(self.held):
            self.release(config_hash)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.release_all()

    def __enter__(self) -> "Leases":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ----- internals -----
    def _write(self, config_hash: str, acquired: float) -> None:
        now = time.time()
        info = LeaseInfo(config_hash=config_hash, host=socket.gethostname(), pid=os.getpid(),
                         token=self.token, acquired=acquired, heartbeat=now, ttl=self.ttl)
        atomic_write_bytes(self.store.lease(config_hash), json.dumps(asdict(info)).encode())

    def beat(self) -> None:
        """Refresh the heartbeat of every lease this process holds."""
        with self._locked():
            for config_hash in list(self.held):
                current = self.read(config_hash)
                if current is None or current.token != self.token:
                    self.held.discard(config_hash)  # taken over after we stalled: not ours now
                    continue
                self._write(config_hash, acquired=current.acquired)

    def _start_heartbeat(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._beat_forever, name="kdbench-lease-heartbeat",
                                        daemon=True)
        self._thread.start()

    def _beat_forever(self) -> None:
        while not self._stop.wait(self.ttl / 4):
            with contextlib.suppress(OSError):
                self.beat()

    def _locked(self):
        return exclusive_lock(self.store.lock("leases"))
