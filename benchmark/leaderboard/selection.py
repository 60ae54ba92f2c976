"""Which runs count: finished runs with the metric are averaged in, every other run is listed.

A run counts when its status is FINISHED and it logged the chosen final metric. Runs in progress,
failed (with their ``failure_reason`` tag), killed, finished without the metric, or superseded
by a later finished run of the same configuration and seed are returned as
:class:`ExcludedRun` entries for the notes below the table; they are never averaged in.
"""

from __future__ import annotations

import math

import pandas as pd

from benchmark.leaderboard.table import ExcludedRun

IN_PROGRESS_STATUSES = ("RUNNING", "SCHEDULED")

#: Columns that identify "the same run again" (a rerun of one configuration and seed).
IDENTITY_COLUMNS = ("role", "dataset", "teacher", "student", "loss", "seed")


def select_runs(runs: pd.DataFrame, metric_column: str) -> tuple[pd.DataFrame, list[ExcludedRun]]:
    """Split runs into (counted frame, excluded runs with their reason)."""
    excluded = []
    counted_mask = []
    for run in runs.itertuples(index=False):
        reason = _exclusion_reason(run, metric_column)
        counted_mask.append(reason is None)
        if reason is not None:
            excluded.append(_excluded(run, reason))
    counted = runs[pd.Series(counted_mask, index=runs.index, dtype=bool)]
    counted, superseded = _drop_superseded(counted)
    return counted.reset_index(drop=True), excluded + superseded


def _exclusion_reason(run, metric_column: str) -> str | None:
    if run.status in IN_PROGRESS_STATUSES:
        return "in progress"
    if run.status == "FAILED":
        return f"failed: {run.failure_reason or 'no failure_reason recorded'}"
    if run.status != "FINISHED":
        return run.status.lower() or "unknown status"
    value = getattr(run, metric_column)
    if value is None or math.isnan(value):
        return f"finished without {metric_column}"
    return None


def _drop_superseded(counted: pd.DataFrame) -> tuple[pd.DataFrame, list[ExcludedRun]]:
    """Keep the latest finished run per configuration and seed (runs without seed all count)."""
    ordered = counted.sort_values("start_time", kind="stable")
    duplicate = ordered.duplicated(subset=list(IDENTITY_COLUMNS), keep="last") \
        & (ordered["seed"] != "")
    superseded = [_excluded(run, "superseded by a later run of the same seed")
                  for run in ordered[duplicate].itertuples(index=False)]
    return counted.drop(index=ordered[duplicate].index), superseded


def _excluded(run, reason: str) -> ExcludedRun:
    if run.role == "teacher":
        where = f"teacher {run.teacher or run.student or '?'}"
    else:
        where = f"{run.teacher or '?'} -> {run.student or '?'}"
    return ExcludedRun(run_id=run.run_id, dataset=run.dataset, where=where, loss=run.loss,
                       seed=run.seed, reason=reason)
