"""The Ray executor: each call becomes a Ray task on a Ray cluster.

Every task asks for one CPU, plus one GPU when the cluster has GPUs and the device is not ``cpu``
(Ray then sets ``CUDA_VISIBLE_DEVICES`` so ``--device auto`` finds exactly that GPU); it runs with
as many torch threads as CPUs it was given. A task lost with its worker process or node is
retried by Ray (``max_retries``); the kdbench work it runs resumes from its epoch checkpoint in
the shared store and reuses its MLflow run, so a retry neither loses nor duplicates anything.
Application errors are not retried: kdbench records those as FAILED runs itself.

Every node must see the same paths: the store (checkpoints, teachers, student weights), the data
directory and plugin files, and must reach the MLflow tracking server and the Optuna storage.
The runner hands executors options whose paths are all absolute
(:func:`benchmark.runner.with_absolute_paths`).
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Iterator, Optional, Sequence

from benchmark.errors import user_error
from benchmark.executors import DEFAULT_MAX_RETRIES, LostCall


def _import_ray():
    try:
        import ray
    except ImportError:
        raise user_error("--executor ray needs the 'ray' package, which is not installed",
                         "--executor ray", "install the cluster extras: pip install -e "
                         "'.[cluster]' (or pip install 'ray>=2.9'), on the driver and on every "
                         "node") from None
    return ray


def _run_call(fn: Callable, args: tuple) -> Any:
    """The body of every Ray task: ``fn(*args)`` with torch threads = the task's CPUs."""
    import ray

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    return fn(*args, threads=max(1, int(cpus)))


class RayExecutor:
    """Run calls as Ray tasks; use as a context manager (connects, then disconnects)."""

    name = "ray"
    in_process = False

    def __init__(self, address: Optional[str] = None, max_retries: int = DEFAULT_MAX_RETRIES,
                 device: str = "auto"):
        self.address = address
        self.max_retries = max_retries
        self.device = device
        self._owns_connection = False
        self._ray = None

    # ----- connection -----
    def __enter__(self) -> "RayExecutor":
        ray = self._ray = _import_ray()
        if not ray.is_initialized():
            self._connect(ray)
            self._owns_connection = True
        if self.device.startswith("cuda") and not self.gpus():
            raise user_error(f"--device {self.device} was asked for, but the Ray cluster at "
                             f"{self.address or 'the default address'} has no GPUs",
                             "--device", "use --device auto or cpu, or add GPU nodes")
        return self

    def _connect(self, ray) -> None:
        import logging

        address = self.address or os.environ.get("RAY_ADDRESS")
        if address and address not in ("auto", "local") and "://" not in address:
            _check_reachable(address)  # ray.init would retry an unreachable address for minutes
        try:
            ray.init(address=self.address, log_to_driver=True, logging_level=logging.WARNING,
                     configure_logging=True)
        except (ConnectionError, RuntimeError, ValueError) as err:
            where = self.address or os.environ.get("RAY_ADDRESS") or "a new local Ray instance"
            raise user_error(f"cannot connect to the Ray cluster at {where}: "
                             f"{str(err).splitlines()[0] if str(err) else type(err).__name__}",
                             "--address", "start the cluster first (`ray start --head` on the "
                             "head node, `ray start --address HEAD:6379` on each worker), then "
                             "pass --address HEAD:6379 (or set RAY_ADDRESS)") from None

    def __exit__(self, *exc) -> None:
        if self._owns_connection and self._ray is not None:
            self._ray.shutdown()
            self._owns_connection = False

    # ----- resources -----
    def gpus(self) -> int:
        return int(self._ray.cluster_resources().get("GPU", 0))

    def nodes(self) -> int:
        """Alive nodes in the cluster."""
        return sum(1 for node in self._ray.nodes() if node.get("Alive"))

    def _task_gpus(self) -> int:
        return 1 if self.device != "cpu" and self.gpus() > 0 else 0

    def check_options(self, options) -> None:
        """Warn when the MLflow store is a node-local file on a multi-node cluster."""
        warn_if_node_local(options.tracking_uri or "", self.nodes())

    def slots(self) -> int:
        """How many tasks the cluster runs at once (its GPUs, else its CPUs)."""
        if self._task_gpus():
            return max(1, self.gpus())
        return max(1, int(self._ray.cluster_resources().get("CPU", 1)))

    # ----- work -----
    def map_unordered(self, fn: Callable, calls: Sequence[tuple]) -> Iterator[tuple[int, Any]]:
        """Submit every call as a task; yield ``(index, result)`` as each completes."""
        ray = self._ray
        task = ray.remote(_run_call).options(num_cpus=1, num_gpus=self._task_gpus(),
                                             max_retries=self.max_retries,
                                             retry_exceptions=False)
        pending = {task.remote(fn, args): index for index, args in enumerate(calls)}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                index = pending.pop(ref)
                try:
                    yield index, ray.get(ref)
                except ray.exceptions.RayError as err:
                    yield index, LostCall(_lost_reason(err, self.max_retries))


def _check_reachable(address: str, timeout_s: float = 10.0) -> None:
    """Fail fast, with a clear error, when nothing listens at the cluster's HOST:PORT."""
    import socket

    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s):
            return
    except (OSError, ValueError) as err:
        raise user_error(f"no Ray cluster answers at {address} ({err})", "--address",
                         "Start the head node with `ray start --head --port 6379` and pass "
                         "--address HEAD_HOST:6379 (or set RAY_ADDRESS)") from None


def _lost_reason(err: BaseException, retries: int) -> str:
    cause = getattr(err, "cause", None)
    if cause is not None and not isinstance(cause, type(err)):
        return f"{type(cause).__name__}: {cause}".splitlines()[0]
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"Ray task lost after {retries} retries ({type(err).__name__}: {first})"


def warn_if_node_local(tracking_uri: str, nodes: int) -> None:
    """A file-based MLflow store on a multi-node cluster only works on a shared file system."""
    if nodes > 1 and not tracking_uri.startswith(("http://", "https://", "postgresql",
                                                  "mysql", "databricks")):
        print(f"kdbench: warning: the MLflow store {tracking_uri} is a local file, but the Ray "
              f"cluster has {nodes} nodes; every node must see it at this path (a shared file "
              "system), or run an MLflow server and pass --tracking-uri http://HOST:5000 "
              "(README: Running on a cluster).", file=sys.stderr)
