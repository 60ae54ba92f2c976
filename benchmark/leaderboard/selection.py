"""Which runs a leaderboard averages: :func:`benchmark.records.select` (the one rule), then one
configuration per cell.

A run counts when it is the latest FINISHED run of its config hash with the chosen metric.
Within a (dataset, pair, loss label) cell only counted runs of one *setting* (the configuration
without its seeds) are averaged: by default the setting the suite plans for the cell (the
configuration with the most runs where the suite plans none). Counted runs of other settings are
either listed below the table (default) or, with ``all_configs``, shown as rows of their own
labelled by what sets them apart (``sp (w=1000)``, ``kd (2 ep, scaled)``). Runs in progress,
failed, killed, finished without the metric, or rerun are listed, never averaged in.
"""

from __future__ import annotations

from typing import Mapping, Optional

import pandas as pd

from benchmark.leaderboard.collect import TAG_COLUMNS
from benchmark.leaderboard.table import ExcludedRun
from benchmark.records import (RunRecord, cell_key, default_settings, describe_difference,
                               planned_cells, select)

planned_specs = planned_cells  # the leaderboard's name for it


def record_of(row, metric_column: str) -> RunRecord:
    """A frame row (of :func:`.collect.collect_runs`) as a :class:`RunRecord`."""
    tags = {tag: getattr(row, column) for column, tag in TAG_COLUMNS.items()
            if getattr(row, column, "")}
    start = getattr(row, "start_time", None)
    start_ms = 0 if start is None or pd.isna(start) else int(pd.Timestamp(start).value // 10**6)
    return RunRecord(run_id=row.run_id, status=row.status, start_time=start_ms, tags=tags,
                     metrics={metric_column: getattr(row, metric_column)})


def select_runs(runs: pd.DataFrame, metric_column: str, *,
                planned: Optional[Mapping[tuple, object]] = None,
                all_configs: bool = False) -> tuple[pd.DataFrame, list[ExcludedRun]]:
    """Split runs into (counted frame, excluded runs with their reason).

    ``planned``: ``cell key -> RunSpec`` the suite plans (:func:`benchmark.records.planned_cells`); None when the
    suite's file is not at hand. With ``all_configs`` the counted runs of other settings stay in
    the frame with their ``loss`` relabelled; otherwise they are excluded and listed.
    """
    rows = list(runs.itertuples(index=True))
    records = {row.run_id: record_of(row, metric_column) for row in rows}
    selection = select(records.values(), metric_column)
    excluded = [_excluded(e.record, e.reason) for e in selection.excluded]
    counted = list(selection.counted.values())
    planned = dict(planned or {})
    defaults = default_settings(counted, {k: s.setting_hash for k, s in planned.items()})
    references = dict(planned)
    for record in counted:
        if defaults.get(cell_key(record)) == record.setting_hash:
            references.setdefault(cell_key(record), record.spec)
    labels: dict[str, str] = {}
    kept: list[str] = []
    for record in counted:
        key = cell_key(record)
        if defaults.get(key) == record.setting_hash:
            kept.append(record.run_id)
            continue
        difference = describe_difference(record.spec, references.get(key))
        if all_configs:
            kept.append(record.run_id)
            labels[record.run_id] = f"{record.tag('loss')} ({difference})"
        else:
            excluded.append(_excluded(record, f"other configuration ({difference}): not the "
                                              "suite's; `--configs all` shows it as its own row"))
    index = {row.run_id: row.Index for row in rows}
    frame = runs.loc[[index[run_id] for run_id in kept]].copy()
    if labels:
        frame["loss"] = [labels.get(run_id, loss) for run_id, loss in
                         zip(frame["run_id"], frame["loss"])]
    return frame.reset_index(drop=True), excluded


def _excluded(record: RunRecord, reason: str) -> ExcludedRun:
    teacher, student = record.tag("teacher"), record.tag("student")
    if record.role == "teacher":
        where = f"teacher {teacher or student or '?'}"
    else:
        where = f"{teacher or '?'} -> {student or '?'}"
    return ExcludedRun(run_id=record.run_id, dataset=record.tag("dataset"), where=where,
                       loss=record.tag("loss"), seed=record.tag("seed"), reason=reason)
