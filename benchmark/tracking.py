"""MLflow tracking of every run (teachers and CE-only baselines too), per DESIGN.md's schema.

One experiment per suite (``kdbench/<suite>``). The cohort engine trains several runs at once, so
this module uses :class:`mlflow.tracking.MlflowClient` with explicit run ids rather than the
fluent one-active-run API. With a SQLite store (MLflow's default, ``sqlite:///mlflow.db``) and
several ``--jobs`` processes, writes are serialised with a file lock next to the database so no
process meets "database is locked".
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import time
from pathlib import Path
from typing import Iterator, Optional

logging.getLogger("alembic").setLevel(logging.WARNING)
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
# kdbench reports its own progress; a "View run at URL" line per finished run is noise.
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

from benchmark.records import (CONFIG_ARTIFACT, EXPERIMENT_PREFIX, RunRecord, Status, Tag,  # noqa: F401
                               by_identity, experiment_name)


def default_tracking_uri() -> str:
    """MLflow's own default (``sqlite:///mlflow.db`` in the working directory for MLflow 3)."""
    import mlflow

    return mlflow.get_tracking_uri()


def absolute_tracking_uri(uri: Optional[str]) -> str:
    """The tracking URI with a relative SQLite or file-store path made absolute (MLflow's default,
    ``sqlite:///mlflow.db`` in the working directory, included); server URIs are unchanged."""
    uri = uri or default_tracking_uri()
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(uri[len("sqlite:///"):]).resolve())
    if uri.startswith("file:") and not uri.startswith("file://"):
        return "file://" + str(Path(uri[len("file:"):]).resolve())
    if "://" not in uri and ":" not in uri:
        return str(Path(uri).resolve())
    return uri


SERVER_SCHEMES = ("http", "https")


def public_url(url: str) -> str:
    """The URL with any password masked, for messages, MLflow tags and the tuned-weights file."""
    import re

    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)

DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")


def tracking_error(uri: str, err: BaseException):
    from benchmark.errors import UserError

    reason = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
    hint = ""
    if isinstance(err, ModuleNotFoundError):
        hint = (f" The database driver '{err.name}' is not installed: `pip install -e "
                "'.[cluster]'` brings psycopg2; then write postgresql+psycopg2://... .")
    return UserError(f"Cannot open the MLflow tracking store '{public_url(uri)}' (--tracking-uri "
                     f"or MLFLOW_TRACKING_URI): {reason}.{hint} Check the URI (sqlite:///path.db, "
                     "a folder, http://host:5000 or postgresql+psycopg2://user:pw@host/db), that "
                     "the server runs and the database exists.")


def check_tracking_uri(uri: str, timeout_s: float = 5.0) -> None:
    """Fail fast, before anything trains: an unknown scheme, or a server or database that does
    not answer within ``timeout_s`` (MLflow itself would retry for minutes)."""
    from urllib.parse import urlparse

    scheme = urlparse(uri).scheme.split("+")[0].lower()
    if scheme in ("", "file") or len(scheme) == 1:  # a path (a Windows drive letter too)
        return
    if scheme in SERVER_SCHEMES:
        _check_server(uri, timeout_s)
    elif scheme in DATABASE_SCHEMES:
        if scheme != "sqlite":
            _check_database(uri, timeout_s)
    elif scheme not in ("databricks", "databricks-uc", "uc"):
        raise tracking_error(uri, ValueError(
            f"'{scheme}' is not a tracking store scheme (use sqlite, a path, http(s), "
            "postgresql, mysql or databricks)"))


def _check_server(uri: str, timeout_s: float) -> None:
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s).close()
    except urllib.error.HTTPError:
        return  # it answered: MLflow's client reports anything else precisely
    except (OSError, ValueError) as err:
        raise tracking_error(uri, err) from None


def _check_database(uri: str, timeout_s: float) -> None:
    import sqlalchemy

    connect_args = {"connect_timeout": int(timeout_s)} if uri.startswith("postgresql") else {}
    try:
        engine = sqlalchemy.create_engine(uri, connect_args=connect_args)
        with engine.connect():
            pass
        engine.dispose()
    except Exception as err:
        raise tracking_error(uri, err) from None


def git_commit() -> str:
    """The commit of the kdbench checkout, or 'unknown' outside a git work tree."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=5, check=False)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def where_tags() -> dict[str, str]:
    """Which machine and process trains a run (on a cluster: which node had the task)."""
    import socket

    return {Tag.HOST: socket.gethostname(), Tag.PID: str(os.getpid())}


def run_environment_tags() -> dict[str, str]:
    """Where and with what a run is trained: host and pid, the ``env.*`` tags of
    :func:`benchmark.environment.environment_tags` (CPU model and ISA, GPU, driver, CUDA,
    cuDNN, library versions, thread count, kdbench version and commit), and the short
    ``git_commit`` / ``torch_version`` / ``torch_threads`` tags older readers use."""
    from benchmark.environment import environment_tags

    env = environment_tags()
    return {**where_tags(), **env, "git_commit": env["env.git_commit"],
            "torch_version": env["env.torch"], "torch_threads": env["env.torch_threads"]}


class Tracker:
    """Thin, process-safe access to one MLflow store."""

    def __init__(self, tracking_uri: Optional[str] = None):
        from mlflow.tracking import MlflowClient

        self.uri = tracking_uri or default_tracking_uri()
        check_tracking_uri(self.uri)
        self._lock_path = self._sqlite_lock_path(self.uri)
        try:
            with self._locked():  # a new SQLite store creates its tables: one process at a time
                self.client = MlflowClient(tracking_uri=self.uri)
                self.client.search_experiments(max_results=1)
        except Exception as err:  # MLflow's own message, in the one-paragraph form
            raise tracking_error(self.uri, err) from None

    @staticmethod
    def _sqlite_lock_path(uri: str) -> Optional[Path]:
        if not uri.startswith("sqlite:///"):
            return None
        return Path(uri[len("sqlite:///"):]).with_suffix(".kdbench-lock")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One write or read of the store at a time (SQLite), and never torn by an interrupt
        (:func:`benchmark.interrupts.deferred`)."""
        from benchmark.interrupts import deferred

        with deferred():
            if self._lock_path is None:
                yield
                return
            from benchmark.locks import exclusive_lock

            with exclusive_lock(self._lock_path):
                yield

    def experiment_id(self, suite: str, create: bool = True) -> Optional[str]:
        with self._locked():
            exp = self.client.get_experiment_by_name(experiment_name(suite))
            if exp is not None:
                return exp.experiment_id
            if not create:
                return None
            return self.client.create_experiment(experiment_name(suite),
                                                 artifact_location=self._artifact_location(suite))

    def _artifact_location(self, suite: str) -> Optional[str]:
        """Beside a SQLite store, artifacts go to ``mlartifacts/`` next to the database (not
        MLflow's ``./mlruns`` in whatever directory the process runs in); servers decide."""
        if self._lock_path is None:
            return None
        folder = self._lock_path.parent / "mlartifacts" / suite.replace("/", "_")
        return folder.resolve().as_uri()

    def records(self, suite: str) -> list[RunRecord]:
        """Every run of the suite's experiment as a :class:`RunRecord`."""
        exp_id = self.experiment_id(suite, create=False)
        if exp_id is None:
            return []
        return [RunRecord.from_mlflow(run) for run in self.search(exp_id)]

    def runs_by_hash(self, suite: str) -> dict[str, list[RunRecord]]:
        """The suite's records grouped by identity (config hash), oldest first."""
        return by_identity(self.records(suite))

    def create_run(self, experiment_id: str, tags: dict[str, str],
                   params: dict[str, object] | None = None) -> str:
        """Create a RUNNING run with ``tags`` and ``params`` (values stringified); its id."""
        from mlflow.entities import Param

        with self._locked():
            run = self.client.create_run(experiment_id, tags=tags)
            batch = [Param(k, str(v)[:6000]) for k, v in (params or {}).items()]
            for i in range(0, len(batch), 100):
                self.client.log_batch(run.info.run_id, params=batch[i:i + 100])
        return run.info.run_id

    def search(self, experiment_id: str) -> list:
        """Every run of an experiment."""
        with self._locked():
            return self.client.search_runs([experiment_id], max_results=50000)

    def start_run(self, suite: str, spec, extra_tags: dict[str, str]) -> str:
        """Create a RUNNING run with the spec's params and tags, the environment's tags
        (:func:`run_environment_tags`) and the resolved configuration as the artifact
        ``config.json``; returns its id."""
        tags = {**spec.tags(), **run_environment_tags(), **extra_tags}
        run_id = self.create_run(self.experiment_id(suite), tags, spec.params())
        self.log_config(run_id, spec)
        return run_id

    def log_config(self, run_id: str, spec) -> None:
        """The resolved configuration (the spec, its hashes and the lr it trains at)."""
        import json

        config = {"config_hash": spec.config_hash, "setting_hash": spec.setting_hash,
                  "lr": spec.lr, "spec": spec.model_dump(mode="json")}
        with self._locked():
            self.client.log_text(run_id, json.dumps(config, indent=2, sort_keys=True),
                                 CONFIG_ARTIFACT)

    def reopen_run(self, run_id: str) -> None:
        """Mark an interrupted run RUNNING again (in this host and process) before it resumes;
        the environment tags then describe where it finished."""
        from mlflow.entities import RunTag

        tags = {**run_environment_tags()}
        with self._locked():
            self.client.update_run(run_id, status=Status.RUNNING)
            self.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        with self._locked():
            self.client.log_batch(run_id, metrics=batch)

    def last_metric_step(self, run_id: str, key: str) -> int:
        """The highest step at which metric ``key`` of the run was logged (0: never)."""
        with self._locked():
            history = self.client.get_metric_history(run_id, key)
        return max((m.step for m in history), default=0)

    def has_metric_step(self, run_id: str, key: str, step: int) -> bool:
        """Whether metric ``key`` of the run has a value logged at ``step``."""
        with self._locked():
            history = self.client.get_metric_history(run_id, key)
        return any(m.step == step for m in history)

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        with self._locked():
            self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def finish(self, run_id: str, status: str = "FINISHED", reason: Optional[str] = None) -> None:
        with self._locked():
            if reason:
                self.client.set_tag(run_id, "failure_reason", reason[:4000])
            self.client.set_terminated(run_id, status=status)

    def get_run(self, run_id: str):
        with self._locked():
            return self.client.get_run(run_id)
