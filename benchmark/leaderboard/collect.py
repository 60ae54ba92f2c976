"""Read a suite's runs from MLflow (``mlflow.search_runs``) into one tidy pandas DataFrame.

One experiment per suite, named ``kdbench/<suite>`` (see docs/DESIGN.md, "MLflow schema"). The
frame has one row per run with the columns in :data:`RUN_COLUMNS`: the run id, status and start
time, the kdbench tags (empty string when missing), the run's teacher seed (read from its spec;
"0" for runs recorded without one), the final accuracy metrics and the teacher-agreement
metrics (NaN when missing). A missing store or experiment is a :class:`UserError` naming what
exists instead.
"""

from __future__ import annotations

import contextlib
import difflib
import json
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd

from benchmark.errors import user_error
from benchmark.records import (EXPERIMENT_PREFIX, FINAL_METRICS, Metric, Tag,  # noqa: F401
                               experiment_name)

#: Frame column -> MLflow tag (names from :mod:`benchmark.records`).
TAG_COLUMNS = {
    "role": Tag.ROLE, "dataset": Tag.DATASET, "teacher": Tag.TEACHER, "student": Tag.STUDENT,
    "loss": Tag.LOSS, "seed": Tag.SEED, "scaled": Tag.SCALED, "recipe": Tag.RECIPE,
    "config_hash": Tag.CONFIG_HASH, "setting_hash": Tag.SETTING_HASH, "spec": Tag.SPEC,
    "failure_reason": Tag.FAILURE_REASON,
}

#: ``--metric`` choice -> final MLflow metric.
METRIC_COLUMNS = dict(FINAL_METRICS)

#: Teacher-student agreement on the test set (``kdbench leaderboard --agreement``).
AGREEMENT_COLUMNS = (Metric.TEST_AGREEMENT, Metric.TEST_KL)

RUN_COLUMNS = ("run_id", "status", "start_time", *TAG_COLUMNS, "teacher_seed",
               *METRIC_COLUMNS.values(), *AGREEMENT_COLUMNS)


def resolve_tracking_uri(tracking_uri: str | None) -> str:
    """The given URI, else MLflow's own default (MLFLOW_TRACKING_URI, else ./mlflow.db)."""
    import mlflow

    return tracking_uri or mlflow.get_tracking_uri()


def collect_runs(suite: str, tracking_uri: str | None = None) -> pd.DataFrame:
    """All active runs of the suite's experiment, normalised to :data:`RUN_COLUMNS`."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from benchmark.tracking import check_tracking_uri, tracking_error

    uri = resolve_tracking_uri(tracking_uri)
    _check_store_exists(uri)
    check_tracking_uri(uri)
    try:
        client = MlflowClient(tracking_uri=uri)
        client.search_experiments(max_results=1)
    except Exception as err:
        raise tracking_error(uri, err) from None
    experiment = client.get_experiment_by_name(experiment_name(suite))
    if experiment is None:
        raise _unknown_experiment_error(suite, uri, client)
    with _tracking_uri(uri):
        raw = mlflow.search_runs(experiment_ids=[experiment.experiment_id],
                                 output_format="pandas")
    return normalize_runs(raw)


def normalize_runs(raw: pd.DataFrame) -> pd.DataFrame:
    """Rename MLflow's ``tags.*`` / ``metrics.*`` columns and fill the missing ones."""
    frame = pd.DataFrame({"run_id": raw.get("run_id", pd.Series(dtype=str)).astype(str)})
    frame["status"] = _column(raw, "status", "")
    frame["start_time"] = _column(raw, "start_time", pd.NaT)
    for column, tag in TAG_COLUMNS.items():
        frame[column] = _column(raw, f"tags.{tag}", "").fillna("").astype(str)
    frame["teacher_seed"] = frame["spec"].map(teacher_seed_of)
    for metric in (*METRIC_COLUMNS.values(), *AGREEMENT_COLUMNS):
        frame[metric] = pd.to_numeric(_column(raw, f"metrics.{metric}", float("nan")))
    frame["role"] = frame["role"].where(frame["role"] != "", _role_from_loss(frame["loss"]))
    return frame.reset_index(drop=True)


def teacher_seed_of(spec_json: str) -> str:
    """The teacher seed in a run's ``kdbench.spec`` tag ("0" without a spec: the default)."""
    if not spec_json:
        return "0"
    try:
        return str(json.loads(spec_json).get("teacher_seed", 0))
    except (ValueError, AttributeError):
        return "0"


def _column(raw: pd.DataFrame, name: str, default) -> pd.Series:
    if name in raw.columns:
        return raw[name].reset_index(drop=True)
    return pd.Series([default] * len(raw), dtype=object if default == "" else None)


def _role_from_loss(loss: pd.Series) -> pd.Series:
    """Runs logged without ``kdbench.role``: a ``teacher`` loss tag means a teacher run."""
    return loss.map(lambda value: "teacher" if value == "teacher" else "student")


def _check_store_exists(uri: str) -> None:
    """Refuse to read a local store that does not exist (MLflow would silently create one)."""
    path = _local_store_path(uri)
    if path is not None and not path.exists():
        raise user_error(
            f"No MLflow tracking store at {path}",
            f"tracking URI {uri}",
            "Run `kdbench run SUITE` first (from the directory that holds mlflow.db), "
            "or point --tracking-uri / MLFLOW_TRACKING_URI at the store the runs went to")


def _local_store_path(uri: str) -> Path | None:
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///"):])
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return Path(parsed.path or uri)
    return None


def _unknown_experiment_error(suite: str, uri: str, client):
    known = sorted(experiment.name[len(EXPERIMENT_PREFIX):]
                   for experiment in client.search_experiments()
                   if experiment.name.startswith(EXPERIMENT_PREFIX))
    close = difflib.get_close_matches(suite, known, n=3)
    hint = f"Did you mean {', '.join(close)}? " if close else ""
    listing = ", ".join(known) if known else "none yet"
    return user_error(
        f"No runs for suite '{suite}': the MLflow experiment '{experiment_name(suite)}' "
        "does not exist",
        f"tracking URI {uri}",
        f"{hint}Suites with runs in this store: {listing}. Run `kdbench run {suite}` first, "
        "or pass --tracking-uri for the store that holds its runs")


@contextlib.contextmanager
def _tracking_uri(uri: str):
    """Point ``mlflow.search_runs`` at ``uri`` for the duration, then restore the previous one."""
    import mlflow

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)
