"""The published tables themselves in the leaderboard layout (``leaderboard --published-only``).

One :class:`LeaderTable` per published table and metric (ImageNet has top-1 and top-5). Cells
hold the published mean, the published std and run count where the paper gives them; the test
against the baseline uses Welch's t-test from those summaries when both sides have them.
"""

from __future__ import annotations

import pandas as pd

from benchmark.errors import user_error
from benchmark.leaderboard.aggregate import mark_best, row_averages
from benchmark.leaderboard.layout import TEACHER_ROW, Pair, order_rows
from benchmark.leaderboard.published import PUBLISHED_TABLES, TOP1, to_published_value
from benchmark.leaderboard.stats import (IS_BASELINE, NO_BASELINE, Comparison, Summary,
                                         welch_test_from_summary)
from benchmark.leaderboard.table import Cell, Leaderboard, LeaderTable


def build_published_board(published: pd.DataFrame, *, baseline: str = "sp",
                          dataset: str | None = None) -> Leaderboard:
    """Every committed published table (optionally one dataset's) as leaderboard tables."""
    if published.empty:
        raise user_error("No published tables found", "results/published/",
                         "Regenerate them with `python -m benchmark.leaderboard.published`")
    if dataset is not None and dataset not in set(published["dataset"]):
        raise user_error(f"No published table for dataset '{dataset}'", "--dataset",
                         f"Published datasets: {', '.join(sorted(set(published['dataset'])))}")
    tables = []
    for spec in PUBLISHED_TABLES:
        rows = published[published["stem"] == spec.stem]
        if dataset is not None:
            rows = rows[rows["dataset"] == dataset]
        for metric, by_metric in rows.groupby("metric", sort=False):
            title = spec.title if metric == TOP1 else f"{spec.title}: {metric}"
            tables.append(published_table(title, by_metric, baseline))
    return Leaderboard(suite="published", metric="published", baseline=baseline, tables=tables)


def published_table(title: str, rows: pd.DataFrame, baseline: str) -> LeaderTable:
    """One published table: columns in published order, rows in the published row order."""
    pairs = list(dict.fromkeys(Pair(t, s) for t, s in zip(rows["teacher"], rows["student"])))
    cells = {}
    for row in rows.itertuples(index=False):
        value = to_published_value(row)
        cells[(row.method, Pair(row.teacher, row.student))] = Cell(
            Summary(value.value, value.std, value.runs), (value.value,), published=value)
    methods = order_rows(method for method, _ in cells)
    for (method, pair), cell in cells.items():
        if method == TEACHER_ROW:
            continue
        if method == baseline:
            cell.comparison = Comparison(IS_BASELINE)
        elif (baseline, pair) not in cells:
            cell.comparison = Comparison(NO_BASELINE)
        else:
            cell.comparison = welch_test_from_summary(cell.summary, cells[(baseline, pair)].summary)
    averages = row_averages(methods, pairs, cells)
    mark_best(methods, pairs, cells, averages)
    dataset = rows["dataset"].iloc[0]
    table = LeaderTable(title=title, dataset=dataset, pairs=pairs, rows=methods, cells=cells,
                        averages=averages, baseline=baseline)
    table.notes.append("Source: " + "; ".join(dict.fromkeys(rows["source"] + ", " + rows["table"])))
    return table
