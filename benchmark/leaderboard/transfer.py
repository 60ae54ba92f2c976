"""The transfer table (CRD Table 8 layout): linear-probe accuracies of a suite's frozen networks.

Reads the probe runs ``kdbench probe`` recorded in ``kdbench/<suite>-probe`` (see
:mod:`benchmark.probe.recording`) and builds, per (source data set -> target data set), one
published-style table with the leaderboard's own machinery: columns are teacher -> student
pairs, rows Teacher (probes of the teacher network), Student (the CE-only baseline), then each
loss; cells are mean ± std of ``probe_acc`` over seeds with Welch's test against the baseline,
and, with ``published``, CRD Table 8's STL-10 / TinyImageNet numbers beside (CIFAR-100 sources).
The STL-10 and TinyImageNet columns of Table 8 are two tables here, one per target, so each
has its own Average column. Outputs go to ``results/<suite>/transfer/`` through the
leaderboard's renderers (md, csv, tex, html, png).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import pandas as pd

from benchmark.errors import user_error
from benchmark.leaderboard.build import DEFAULT_BASELINE, build_table
from benchmark.leaderboard.collect import experiment_name, normalize_runs, resolve_tracking_uri
from benchmark.leaderboard.published import load_published
from benchmark.leaderboard.selection import select_runs
from benchmark.leaderboard.table import Leaderboard
from benchmark.leaderboard.write import (ALL_FORMATS, RESULTS_DIR, LeaderboardResult,
                                         parse_formats, write_outputs)

from benchmark.records import PROBE_SUFFIX as PROBE_EXPERIMENT_SUFFIX

PROBE_METRIC = "probe_acc"
TRANSFER_FOLDER = "transfer"
PUBLISHED_SOURCE = "cifar100"  # CRD Table 8 probes CIFAR-100 students
TARGET_NAMES = {"stl10": "STL-10 (test split)", "tinyimagenet": "TinyImageNet (val split)"}
TARGET_ORDER = ("stl10", "tinyimagenet")
METRIC_LABEL = ("probe_acc: top-1 accuracy (%) of a linear classifier trained on the frozen "
                "network's pooled embedding (PROTOCOL §4)")


@dataclass
class TransferBoard(Leaderboard):
    """A leaderboard whose cells are linear-probe accuracies."""

    @property
    def metric_label(self) -> str:
        return METRIC_LABEL


def collect_probe_runs(suite: str, tracking_uri: str | None = None) -> pd.DataFrame:
    """The suite's probe runs: the leaderboard's run columns (``role`` is the probed network's
    role) plus ``probe_acc``, ``source_dataset``, ``source_run_id`` and ``probe_settings``."""
    from mlflow.tracking import MlflowClient

    uri = resolve_tracking_uri(tracking_uri)
    _check_local_store(uri)
    client = MlflowClient(tracking_uri=uri)
    name = experiment_name(suite + PROBE_EXPERIMENT_SUFFIX)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        raise user_error(f"No probe results for suite '{suite}': the MLflow experiment '{name}' "
                         "does not exist", f"tracking URI {uri}",
                         f"Run `kdbench probe {suite} --dataset stl10,tinyimagenet` first (or "
                         "a digits variant for digits suites), or pass --tracking-uri")
    raw = pd.DataFrame([_raw_record(run) for run in
                        client.search_runs([experiment.experiment_id], max_results=50000)])
    frame = normalize_runs(raw)
    extra = {"role": "source_role", "source_dataset": "source_dataset",
             "source_run_id": "source_run_id", "probe_settings": "probe_settings"}
    for column, tag in extra.items():
        frame[column] = _text_column(raw, f"tags.{tag}")
    teacher_by_loss = frame["loss"].map(lambda loss: "teacher" if loss == "teacher" else "student")
    frame["role"] = frame["role"].where(frame["role"] != "", teacher_by_loss)
    frame[PROBE_METRIC] = pd.to_numeric(raw.get(f"metrics.{PROBE_METRIC}",
                                                pd.Series([float("nan")] * len(raw))))
    return frame


def build_transfer_board(runs: pd.DataFrame, suite: str, *, baseline: str = DEFAULT_BASELINE,
                         published: pd.DataFrame | None = None, show_published: bool = False,
                         dataset: str | None = None) -> TransferBoard:
    """One :class:`LeaderTable` per (source data set, target), in Table 8's target order."""
    if dataset is not None:
        runs = _only_target(runs, dataset)
    empty = pd.DataFrame(columns=["dataset", "metric", "teacher", "student", "method"])
    published = published if published is not None else empty
    tables = []
    for source, target in _table_keys(runs):
        group = runs[(runs["source_dataset"] == source) & (runs["dataset"] == target)]
        rows, excluded = select_runs(group, PROBE_METRIC)  # reruns superseded within the group
        table = build_table(target, rows, excluded, metric_column=PROBE_METRIC,
                            baseline=baseline,
                            published=published if source == PUBLISHED_SOURCE else empty)
        table.title = f"Linear probe, {source or '?'} -> {TARGET_NAMES.get(target, target)}"
        table.notes.extend(_settings_notes(rows))
        if show_published and table.pairs and not table.has_published:
            table.notes.append(f"No published numbers for {source} -> {target} and these pairs.")
        tables.append(table)
    board = TransferBoard(suite=suite, metric="probe", baseline=baseline, tables=tables,
                          with_published=show_published)
    if runs.empty:
        board.notes.append("The suite has no probe runs yet.")
    return board


def write_transfer_leaderboard(suite: str, tracking_uri: str | None = None,
                               out_dir: str | Path | None = None, *,
                               formats: str | Iterable[str] = ALL_FORMATS,
                               against: str = DEFAULT_BASELINE, published: bool = False,
                               dataset: str | None = None) -> LeaderboardResult:
    """Build the transfer tables and write them (default ``results/<suite>/transfer/``)."""
    board = build_transfer_board(collect_probe_runs(suite, tracking_uri), suite,
                                 baseline=against, published=load_published(),
                                 show_published=published, dataset=dataset)
    target = Path(out_dir) if out_dir is not None else RESULTS_DIR / suite / TRANSFER_FOLDER
    return write_outputs(board, target, parse_formats(formats))


def _table_keys(runs: pd.DataFrame) -> list[tuple[str, str]]:
    keys = set(zip(runs["source_dataset"], runs["dataset"]))
    rank = {name: index for index, name in enumerate(TARGET_ORDER)}
    return sorted(keys, key=lambda key: (key[0], rank.get(key[1], len(rank)), key[1]))


def _settings_notes(rows: pd.DataFrame) -> list[str]:
    settings = sorted(set(rows["probe_settings"]) - {""})
    if len(settings) == 1:
        return [f"Probe: {settings[0]}."]
    if settings:
        return ["Probe settings differ between the counted runs: " + " | ".join(settings)]
    return []


def _only_target(runs: pd.DataFrame, dataset: str) -> pd.DataFrame:
    known = sorted(set(runs["dataset"]) - {""})
    if dataset not in known:
        raise user_error(f"No probe runs on data set '{dataset}' in this suite", "--dataset",
                         f"Probed data sets: {', '.join(known) or 'none'}")
    return runs[runs["dataset"] == dataset]


def _raw_record(run) -> dict:
    record = {"run_id": run.info.run_id, "status": run.info.status,
              "start_time": pd.to_datetime(run.info.start_time, unit="ms")}
    record.update({f"tags.{key}": value for key, value in run.data.tags.items()})
    record.update({f"metrics.{key}": value for key, value in run.data.metrics.items()})
    return record


def _text_column(raw: pd.DataFrame, name: str) -> pd.Series:
    if name not in raw.columns:
        return pd.Series([""] * len(raw), dtype=object)
    return raw[name].fillna("").astype(str).reset_index(drop=True)


def _check_local_store(uri: str) -> None:
    """Refuse a missing local SQLite file (MLflow would silently create an empty one)."""
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).exists():
        raise user_error(f"No MLflow tracking store at {uri[len('sqlite:///'):]}",
                         f"tracking URI {uri}",
                         "Pass --tracking-uri for the store `kdbench run` and `kdbench probe` "
                         "wrote to")
