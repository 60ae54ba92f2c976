"""Plain-text pieces of a leaderboard cell, shared by the markdown, LaTeX and HTML renderers.

``73.40 ± 0.20 (5)`` is a mean, the sample std and the seed count; a single seed prints
``73.40 (1)``; published numbers without std print the mean alone. Significance markers: ``▲``
significantly better than the baseline, ``▼`` significantly worse (Welch, p < 0.05), ``○`` no
test (fewer than 2 seeds on a side, or no variance).
"""

from __future__ import annotations

import math

from benchmark.leaderboard.layout import display_name
from benchmark.leaderboard.stats import (LOSS, NO_TEST_FEW_SEEDS, NO_TEST_ZERO_VARIANCE, WIN,
                                         Comparison, Summary)
from benchmark.leaderboard.table import AverageCell, Cell, Leaderboard, LeaderTable

WIN_MARK = "▲"
LOSS_MARK = "▼"
NO_TEST_MARK = "○"
EMPTY = "–"


def summary_text(summary: Summary, digits: int = 2, plus_minus: str = "±") -> str:
    """``mean ± std (n)``; ``mean (1)`` for one seed; ``mean ± std`` or ``mean`` without n."""
    if math.isnan(summary.mean):
        return EMPTY
    text = f"{summary.mean:.{digits}f}"
    if not math.isnan(summary.std):
        text += f" {plus_minus} {summary.std:.{digits}f}"
    if summary.n is not None:
        text += f" ({summary.n})"
    return text


def significance_mark(comparison: Comparison | None) -> str:
    """▲ / ▼ for a significant win / loss, ○ for 'no test', '' otherwise."""
    if comparison is None:
        return ""
    return {WIN: WIN_MARK, LOSS: LOSS_MARK, NO_TEST_FEW_SEEDS: NO_TEST_MARK,
            NO_TEST_ZERO_VARIANCE: NO_TEST_MARK}.get(comparison.verdict, "")


def published_text(cell: Cell, digits: int = 2, delta: str = "Δ") -> str:
    """``pub 73.33, Δ +0.07`` (our mean minus the published value), or ``pub –``."""
    if cell.published is None:
        return f"pub {EMPTY}"
    return f"pub {cell.published.value:.{digits}f}, {delta} {cell.diff:+.{digits}f}"


def average_text(average: AverageCell | None, digits: int = 2) -> str:
    """The Average cell: the mean, plus ``[k/N pairs]`` when the row misses some pairs."""
    if average is None:
        return EMPTY
    text = f"{average.mean:.{digits}f}"
    if not average.complete:
        text += f" [{average.pairs_present}/{average.pairs_total} pairs]"
    return text


def header_text(board: Leaderboard) -> str:
    """The line under the title: metric, cell format, test."""
    if board.metric == "published":
        cells = "published mean ± std (runs) where the paper gives them"
    else:
        cells = "mean ± sample std (n seeds)"
    return f"Metric: {board.metric_label}. Cells: {cells}; bold: best loss in the column."


def legend_text(board: Leaderboard, table: LeaderTable) -> str:
    """The legend under a table (names the baseline and what the marks mean)."""
    baseline = display_name(table.baseline)
    evidence = ("from the published mean, std and run count" if board.metric == "published"
                else "over seeds")
    text = (f"{WIN_MARK} / {LOSS_MARK}: significantly better / worse than {baseline} on the pair "
            f"(Welch's t-test {evidence}, p < 0.05); {NO_TEST_MARK} {NO_TEST_FEW_SEEDS} "
            f"(fewer than 2 seeds on a side, or no variance); no mark: no significant "
            f"difference. Average: mean over pairs of the per-pair means.")
    if board.with_published and table.has_published:
        text += " pub: the published value; Δ: ours minus published."
    return text
