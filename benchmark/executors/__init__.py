"""Where the units of work of ``kdbench run`` and ``kdbench tune`` execute.

A unit of work is a plain call ``fn(*args, threads=T)`` of a module-level function (one cohort of
runs, or one tuning worker). An executor takes a list of such calls and yields each call's
result as it completes, in completion order, as ``(index, result)``; a call lost for good (its
node died more often than the retries allow) yields ``(index, LostCall(reason))``.

- ``local`` (the default): in this process for one job, else in ``jobs`` spawned processes on this
  machine, each with its share of the cores (:mod:`benchmark.executors.local`);
- ``ray``: as Ray tasks on a Ray cluster, one CPU (and one GPU when the cluster has GPUs) each,
  retried on a node loss (:mod:`benchmark.executors.ray_cluster`).

Every executor has ``slots()`` (calls at once), ``in_process`` (calls run in this process, so
they may draw progress bars) and ``check_options(options)`` (warns about settings its workers
cannot use, e.g. a node-local MLflow file on a multi-node cluster).
"""

from __future__ import annotations

from dataclasses import dataclass

EXECUTORS = ("local", "ray")
DEFAULT_MAX_RETRIES = 3  # times Ray retries a task lost with its worker or node


@dataclass(frozen=True)
class LostCall:
    """A call whose result never came back (its worker or node died and retries ran out)."""

    reason: str


def make_executor(options):
    """The executor ``options.executor`` names, for a :class:`benchmark.runner.RunOptions`."""
    from benchmark.errors import user_error

    if options.executor == "local":
        from benchmark.executors.local import LocalExecutor

        return LocalExecutor(options.jobs)
    if options.executor == "ray":
        from benchmark.executors.ray_cluster import RayExecutor

        return RayExecutor(options.address, max_retries=options.max_retries,
                           device=options.device)
    raise user_error(f"unknown executor '{options.executor}'", "--executor",
                     f"use one of: {', '.join(EXECUTORS)}")
