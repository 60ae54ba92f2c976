"""Plain-text pieces of a leaderboard cell, shared by the markdown, LaTeX and HTML renderers.

``73.40 ± 0.20 (5)`` is a mean, the sample std and the seed count; a single seed prints
``73.40 (1)``; published numbers without std print the mean alone. Verdict marks against the
baseline: ``▲`` better, ``▼`` worse (Holm-adjusted p < 0.05), ``≈`` equivalent within ±delta
(TOST), ``?`` inconclusive, ``○`` no test (fewer than 2 seeds, or no variance).
"""

from __future__ import annotations

import math

from benchmark.leaderboard.layout import display_name
from benchmark.leaderboard.across import AcrossPairs
from benchmark.leaderboard.paired import TEST_NAMES
from benchmark.leaderboard.stats import (BETTER, EQUIVALENT, INCONCLUSIVE, NO_TEST_FEW_SEEDS,
                                         NO_TEST_ZERO_VARIANCE, WORSE, Comparison, Summary)
from benchmark.leaderboard.table import AverageCell, Cell, Leaderboard, LeaderTable

WIN_MARK = "▲"
LOSS_MARK = "▼"
EQUIVALENT_MARK = "≈"
INCONCLUSIVE_MARK = "?"
NO_TEST_MARK = "○"
EMPTY = "–"
MARKS = {BETTER: WIN_MARK, WORSE: LOSS_MARK, EQUIVALENT: EQUIVALENT_MARK,
         INCONCLUSIVE: INCONCLUSIVE_MARK, NO_TEST_FEW_SEEDS: NO_TEST_MARK,
         NO_TEST_ZERO_VARIANCE: NO_TEST_MARK}


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
    """▲ better, ▼ worse, ≈ equivalent, ? inconclusive, ○ no test, '' otherwise (baseline)."""
    if comparison is None:
        return ""
    return MARKS.get(comparison.verdict, "")


def seeds_text(count: int | None) -> str:
    """``12`` seeds, or ``> 1000`` when no count up to the limit decides it."""
    from benchmark.leaderboard.power import MAX_SEEDS

    return str(count) if count is not None else f"> {MAX_SEEDS}"


def verdict_text(comparison: Comparison | None, delta: float) -> str:
    """The verdict in words, with the seeds that would decide an inconclusive one."""
    if comparison is None:
        return ""
    if comparison.verdict == EQUIVALENT:
        return f"equivalent within ±{delta:g}"
    if comparison.verdict == INCONCLUSIVE and comparison.evidence is not None:
        return f"inconclusive ({seeds_text(comparison.seeds_needed)} seeds would decide)"
    return comparison.verdict


def interval_text(low: float, high: float, digits: int = 2) -> str:
    return f"[{low:.{digits}f}, {high:.{digits}f}]"


def across_text(across: AcrossPairs) -> tuple[str, str]:
    """(mean rank [95% CI], IQM [95% CI]) of one row."""
    return (f"{across.mean_rank:.2f} {interval_text(across.mean_rank_low, across.mean_rank_high)}",
            f"{across.iqm:.2f} {interval_text(across.iqm_low, across.iqm_high)}")


def agreement_text(cell: Cell | None, digits: int = 2) -> str:
    """``97.10 ± 0.40 % (KL 0.052)`` or the empty mark."""
    if cell is None or cell.agreement is None:
        return EMPTY
    text = summary_text(cell.agreement, digits)
    if cell.kl is not None:
        text += f", KL {cell.kl.mean:.3f}"
    return text


def published_text(cell: Cell, digits: int = 2, delta: str = "Δ") -> str:
    """``pub 73.33, Δ +0.07`` (our mean minus the published value), or ``pub –``; an anchor
    whose protocol differs says how: ``pub 76.32 [best epoch], Δ -0.41``."""
    if cell.published is None:
        return f"pub {EMPTY}"
    flags = f" [{', '.join(cell.published.flags)}]" if cell.published.flags else ""
    return f"pub {cell.published.value:.{digits}f}{flags}, {delta} {cell.diff:+.{digits}f}"


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
    if board.metric == "published":
        text = (f"{WIN_MARK} / {LOSS_MARK}: significantly better / worse than {baseline} on "
                f"the pair (Welch's t-test from the published mean, std and run count, "
                f"p < 0.05); {INCONCLUSIVE_MARK} inconclusive; {NO_TEST_MARK} no test (no "
                f"std or fewer than 2 runs). Average: mean over pairs of the per-pair means.")
    else:
        text = _verdict_legend(board, baseline)
    if board.with_published and table.has_published:
        text += (" pub: the published value; Δ: ours minus published; [...]: how that "
                 "number's protocol differs from ours (best epoch, a longer schedule, stronger "
                 "augmentation, a secondary copy).")
    return text


def _verdict_legend(board: Leaderboard, baseline: str) -> str:
    pairing = ("unpaired, over all runs" if board.test == "welch"
               else "paired by (teacher seed, seed)")
    return (f"Against {baseline} on the pair ({TEST_NAMES[board.test]}, {pairing}; "
            f"Holm-adjusted over the table's pairs x losses, alpha {board.alpha:g}): "
            f"{WIN_MARK} better; {LOSS_MARK} worse; {EQUIVALENT_MARK} equivalent within "
            f"±{board.delta:g} points (two one-sided tests); {INCONCLUSIVE_MARK} inconclusive "
            f"(the CSV gives the seeds that would decide it); {NO_TEST_MARK} no test (fewer "
            f"than 2 matched seeds, or no variance). Average: mean over pairs of the per-pair "
            f"means.")
