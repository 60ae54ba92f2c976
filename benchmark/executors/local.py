"""The local executor: calls run in this process (one job) or in spawned processes on this
machine (``--jobs N``), each process with ``cpu_count // N`` torch threads."""

from __future__ import annotations

import contextlib
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, Callable, Iterator, Sequence


class LocalExecutor:
    """Run calls here (``jobs <= 1``) or in a pool of ``jobs`` spawned processes."""

    name = "local"

    def __init__(self, jobs: int = 1):
        self.jobs = max(1, int(jobs))

    def __enter__(self) -> "LocalExecutor":
        return self

    def __exit__(self, *exc) -> None:
        return None

    def slots(self) -> int:
        """How many calls run at once."""
        return self.jobs

    @property
    def in_process(self) -> bool:
        return self.jobs <= 1

    def check_options(self, options) -> None:
        """Everything local works on this machine."""

    def map_unordered(self, fn: Callable, calls: Sequence[tuple]) -> Iterator[tuple[int, Any]]:
        """Yield ``(index, fn(*calls[index], threads=...))`` as each call completes."""
        jobs = min(self.jobs, len(calls))
        if jobs <= 1:
            for index, args in enumerate(calls):
                yield index, fn(*args, threads=None)
            return
        import multiprocessing

        from benchmark.interrupts import ignore_sigint

        threads = max(1, (os.cpu_count() or 1) // jobs)
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx,
                                 initializer=ignore_sigint) as pool:
            futures = {pool.submit(fn, *args, threads=threads): index
                       for index, args in enumerate(calls)}
            try:
                for future in as_completed(futures):
                    yield futures[future], future.result()
            except KeyboardInterrupt:  # SIGINT or SIGTERM here: each worker closes its runs
                _forward_interrupt(pool)
                raise


def _forward_interrupt(pool: ProcessPoolExecutor) -> None:
    """SIGTERM every worker (they mark their runs KILLED and release their leases), start no
    queued call, and wait for them to exit."""
    import signal

    for future_process in list(getattr(pool, "_processes", {}).values()):
        with contextlib.suppress(ProcessLookupError, OSError):
            os.kill(future_process.pid, signal.SIGTERM)
    pool.shutdown(wait=True, cancel_futures=True)
