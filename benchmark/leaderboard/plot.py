"""The leaderboard plot (``leaderboard.png``): a panel per pair, each loss's mean with std bars.

Drawn with matplotlib's Agg canvas directly (no pyplot, no global backend switch), so it works
headless. In each panel the rows are the table's rows (Student and the losses), the baseline is
an orange diamond with a dashed line at its mean, significant wins / losses against it are
green / red; the teacher's mean is in the panel title (a line would squash the scale).
"""

from __future__ import annotations

import io
import math

from benchmark.leaderboard.layout import TEACHER_ROW, display_name
from benchmark.leaderboard.stats import LOSS, WIN
from benchmark.leaderboard.table import Leaderboard, LeaderTable

COLORS = {WIN: "#1a7f37", LOSS: "#cf222e", "baseline": "#e36209", "other": "#0969da",
          "student": "#6e7781"}
PANEL_WIDTH = 4.6
MAX_COLUMNS = 3


def plot_leaderboard(board: Leaderboard) -> bytes:
    """The PNG bytes of the plot (one panel per pair over all tables; a note if there is none)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = [(table, pair) for table in board.tables for pair in table.pairs]
    columns = max(1, min(MAX_COLUMNS, len(panels)))
    rows = max(1, math.ceil(len(panels) / columns))
    longest = max((len(table.rows) for table in board.tables), default=1)
    figure = Figure(figsize=(PANEL_WIDTH * columns, rows * (0.32 * longest + 1.4)),
                    layout="constrained")
    FigureCanvasAgg(figure)
    if not panels:
        axes = figure.add_subplot()
        axes.text(0.5, 0.5, "No finished runs yet", ha="center", va="center")
        axes.set_axis_off()
    for index, (table, pair) in enumerate(panels):
        axes = figure.add_subplot(rows, columns, index + 1)
        draw_panel(axes, table, pair)
    if panels:
        figure.suptitle(_caption(board), fontsize=9)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def draw_panel(axes, table: LeaderTable, pair) -> None:
    """One pair: a horizontal dot plot of every row's mean with ±1 std error bars."""
    rows = [row for row in table.rows if row != TEACHER_ROW and table.cell(row, pair)]
    for position, row in enumerate(rows):
        cell = table.cell(row, pair)
        std = 0.0 if math.isnan(cell.summary.std) else cell.summary.std
        color, marker = _style(table, row, cell)
        axes.errorbar(cell.summary.mean, position, xerr=std, fmt=marker, color=color,
                      capsize=3, markersize=6)
    baseline = table.cell(table.baseline, pair)
    if baseline is not None:
        axes.axvline(baseline.summary.mean, color=COLORS["baseline"], linestyle="--",
                     linewidth=1)
    teacher = table.cell(TEACHER_ROW, pair)
    # on its own line: a long pair label and the note overflow one panel's width
    teacher_note = f"\n(teacher {teacher.summary.mean:.2f})" if teacher is not None else ""
    axes.set_yticks(range(len(rows)), [display_name(row) for row in rows])
    axes.invert_yaxis()
    axes.set_title(f"{table.dataset}: {pair.label}{teacher_note}", fontsize=9)
    axes.set_xlabel("accuracy (%)", fontsize=8)
    axes.tick_params(labelsize=8)
    axes.grid(axis="x", alpha=0.3)


def _caption(board: Leaderboard) -> str:
    baseline = display_name(board.baseline)
    return (f"mean ± std over seeds; orange diamond / dashed line: {baseline} (baseline); "
            f"green / red: better / worse than {baseline} (Holm-adjusted p < 0.05)")


def _style(table: LeaderTable, row: str, cell) -> tuple[str, str]:
    if row == table.baseline:
        return COLORS["baseline"], "D"
    if row == "student":
        return COLORS["student"], "s"
    verdict = cell.comparison.verdict if cell.comparison else ""
    return COLORS.get(verdict, COLORS["other"]), "o"
