"""Render a :class:`Leaderboard` as LaTeX (``leaderboard.tex``): a booktabs ``tabular`` per table.

Meant to be ``\\input`` into a document that loads ``booktabs``. Every piece of text is escaped;
the best loss per column is bold, significant wins / losses against the baseline are
``$\\uparrow$`` / ``$\\downarrow$``, equivalent ``$\\approx$``, inconclusive ``?``, no test
``$\\circ$``.
"""

from __future__ import annotations

import re

from benchmark.leaderboard import cell_text
from benchmark.leaderboard.layout import AVERAGE_COLUMN, display_name, is_loss_row
from benchmark.leaderboard.table import Cell, Leaderboard, LeaderTable

_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "<": r"$<$", ">": r"$>$", "±": r"$\pm$", "→": r"$\to$", "Δ": r"$\Delta$", "–": "--",
    "≈": r"$\approx$",
}
_SPECIAL_PATTERN = re.compile("|".join(re.escape(char) for char in _SPECIAL))
_MARKS = {cell_text.WIN_MARK: r"$\uparrow$", cell_text.LOSS_MARK: r"$\downarrow$",
          cell_text.NO_TEST_MARK: r"$\circ$", cell_text.EQUIVALENT_MARK: r"$\approx$",
          cell_text.INCONCLUSIVE_MARK: "?"}


def escape_latex(text: str) -> str:
    """Escape LaTeX's special characters (and map ±, →, Δ, – to math or dashes)."""
    return _SPECIAL_PATTERN.sub(lambda match: _SPECIAL[match.group(0)], text)


def render_latex(board: Leaderboard) -> str:
    title = "Published results" if board.metric == "published" else f"suite {board.suite}"
    parts = [f"% kdbench leaderboard, {escape_latex(title)}. Needs \\usepackage{{booktabs}}.",
             f"% {escape_latex(cell_text.header_text(board))}", ""]
    for table in board.tables:
        if table.pairs:
            parts.append(table_latex(board, table))
    return "\n".join(parts)


def table_latex(board: Leaderboard, table: LeaderTable) -> str:
    columns = "l" + "r" * (len(table.pairs) + 1)
    header = ["Accuracy (\\%)", *(escape_latex(pair.label.replace("->", "→"))
                                  for pair in table.pairs), AVERAGE_COLUMN]
    caption = escape_latex(f"{table.title}. {cell_text.legend_text(board, table)}")
    lines = ["\\begin{table}[ht]", "\\centering", "\\small",
             f"\\caption{{{_marks_to_latex(caption)}}}",
             f"\\begin{{tabular}}{{{columns}}}", "\\toprule", " & ".join(header) + " \\\\",
             "\\midrule"]
    show_published = board.with_published and table.has_published
    previous_was_leading = False
    for row in table.rows:
        if previous_was_leading and is_loss_row(row):
            lines.append("\\midrule")
        previous_was_leading = not is_loss_row(row)
        cells = [_cell(show_published, table.cell(row, pair)) for pair in table.pairs]
        lines.append(" & ".join([escape_latex(display_name(row)), *cells,
                                 _average(table, row)]) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}", ""]
    return "\n".join(lines)


def _cell(show_published: bool, cell: Cell | None) -> str:
    if cell is None:
        return "--"
    text = escape_latex(cell_text.summary_text(cell.summary))
    if cell.best:
        text = f"\\textbf{{{text}}}"
    mark = cell_text.significance_mark(cell.comparison)
    if mark:
        text += " " + _MARKS[mark]
    if show_published:
        text += " " + escape_latex(f"[{cell_text.published_text(cell)}]")
    return text


def _average(table: LeaderTable, row: str) -> str:
    average = table.averages.get(row)
    text = escape_latex(cell_text.average_text(average))
    return f"\\textbf{{{text}}}" if average is not None and average.best else text


def _marks_to_latex(text: str) -> str:
    for mark, latex in _MARKS.items():
        text = text.replace(mark, latex)
    return text
