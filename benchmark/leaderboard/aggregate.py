"""Column-wise aggregates of a leaderboard table: the Average column and the best-in-column marks.

The Average of a row is the mean over pairs of that row's per-pair means, over the pairs where
the row has a value (the cell says how many of the table's pairs it covers). Best in a column is
the highest mean among the distillation-loss rows (Teacher and Student do not compete); ties
share the mark. The Average column is marked the same way over complete averages only.
"""

from __future__ import annotations

import math

import numpy as np

from benchmark.leaderboard.layout import Pair, is_loss_row
from benchmark.leaderboard.table import AverageCell, Cell


def row_averages(rows: list[str], pairs: list[Pair],
                 cells: dict[tuple[str, Pair], Cell]) -> dict[str, AverageCell]:
    """Mean over pairs of each row's per-pair means (rows with no value in any pair omitted)."""
    averages = {}
    for row in rows:
        means = [cells[(row, pair)].summary.mean for pair in pairs if (row, pair) in cells]
        means = [mean for mean in means if not math.isnan(mean)]
        if means:
            averages[row] = AverageCell(float(np.mean(means)), len(means), len(pairs))
    return averages


def mark_best(rows: list[str], pairs: list[Pair], cells: dict[tuple[str, Pair], Cell],
              averages: dict[str, AverageCell]) -> None:
    """Set ``best`` on the top loss cell of every column and of the Average column (in place)."""
    for pair in pairs:
        column = {row: cells[(row, pair)] for row in rows
                  if is_loss_row(row) and (row, pair) in cells}
        for cell in _top(column, lambda cell: cell.summary.mean):
            cell.best = True
    complete = {row: average for row, average in averages.items()
                if is_loss_row(row) and average.complete}
    for average in _top(complete, lambda average: average.mean):
        average.best = True


def _top(entries: dict, mean_of) -> list:
    means = {row: mean_of(entry) for row, entry in entries.items()
             if not math.isnan(mean_of(entry))}
    if not means:
        return []
    best = max(means.values())
    return [entries[row] for row, mean in means.items() if mean == best]
