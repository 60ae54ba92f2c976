"""Render a :class:`Leaderboard` as one static, self-contained ``index.html``.

Inline CSS, no scripts, no external resources; the plot is embedded as a base64 PNG. The markup
is well-formed XHTML (every element closed, only numeric/XML entities), so it parses with
``xml.etree`` as well as with browsers.
"""

from __future__ import annotations

import base64
from html import escape

from benchmark.leaderboard import cell_text
from benchmark.leaderboard.layout import AVERAGE_COLUMN, display_name
from benchmark.leaderboard.stats import TALLY_COLUMNS, TALLY_HEADERS
from benchmark.leaderboard.table import Cell, Leaderboard, LeaderTable

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3em 0.7em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { border-bottom: 2px solid #444; }
tr.leading td { color: #555; }
.win { color: #1a7f37; } .loss { color: #cf222e; } .notest { color: #888; }
.equiv { color: #0969da; }
.pub { color: #666; font-size: 0.85em; }
.note { color: #555; font-style: italic; }
img { max-width: 100%; }
"""


def render_html(board: Leaderboard, png: bytes | None = None) -> str:
    title = ("Published results" if board.metric == "published"
             else f"kdbench leaderboard: suite {board.suite}")
    body = [f"<h1>{escape(title)}</h1>", f"<p>{escape(cell_text.header_text(board))}</p>"]
    body += [f'<p class="note">{escape(note)}</p>' for note in board.notes]
    for table in board.tables:
        body += table_section(board, table)
    if png is not None:
        encoded = base64.b64encode(png).decode("ascii")
        body += ["<h2>Plot</h2>",
                 f'<img src="data:image/png;base64,{encoded}" alt="Per-pair accuracy with '
                 f'error bars; the baseline {escape(display_name(board.baseline))} is marked"/>']
    return "\n".join([
        "<!DOCTYPE html>",
        '<html xmlns="http://www.w3.org/1999/xhtml" lang="en">',
        "<head>", '<meta charset="utf-8"/>', f"<title>{escape(title)}</title>",
        f"<style>{STYLE}</style>", "</head>", "<body>", *body, "</body>", "</html>", ""])


def table_section(board: Leaderboard, table: LeaderTable) -> list[str]:
    parts = [f"<h2>{escape(table.title)}</h2>"]
    if table.pairs:
        parts += main_table(board, table)
        parts.append(f"<p>{escape(cell_text.legend_text(board, table))}</p>")
    else:
        parts.append("<p>No finished student runs on this dataset yet.</p>")
    parts += [f'<p class="note">{escape(note)}</p>' for note in table.notes]
    parts += tally_table(table) + across_table(table)
    if board.agreement and table.pairs:
        parts += agreement_table(table)
    if table.excluded:
        parts.append("<p>Runs not counted (listed, never averaged in):</p>")
        parts.append("<ul>" + "".join(f"<li>{escape(run.description)}</li>"
                                      for run in table.excluded) + "</ul>")
    return parts


def main_table(board: Leaderboard, table: LeaderTable) -> list[str]:
    header = "".join(f"<th>{escape(text)}</th>" for text in
                     ["Accuracy (%)", *(pair.label for pair in table.pairs), AVERAGE_COLUMN])
    rows = []
    show_published = board.with_published and table.has_published
    for row in table.rows:
        cells = "".join(f"<td>{_cell(show_published, table.cell(row, pair))}</td>"
                        for pair in table.pairs)
        average = table.averages.get(row)
        average_html = escape(cell_text.average_text(average))
        if average is not None and average.best:
            average_html = f"<strong>{average_html}</strong>"
        css = ' class="leading"' if row in ("teacher", "student") else ""
        rows.append(f"<tr{css}><td>{escape(display_name(row))}</td>{cells}"
                    f"<td>{average_html}</td></tr>")
    return ["<table>", f"<thead><tr>{header}</tr></thead>", "<tbody>", *rows, "</tbody>",
            "</table>"]


def tally_table(table: LeaderTable) -> list[str]:
    tallies = table.verdict_tally()
    if not tallies:
        return []
    headers = ["Loss", *(TALLY_HEADERS[column] for column in TALLY_COLUMNS)]
    header = "".join(f"<th>{escape(text)}</th>" for text in headers)
    rows = ["<tr><td>" + escape(display_name(row)) + "</td>"
            + "".join(f"<td>{counts[column]}</td>" for column in TALLY_COLUMNS) + "</tr>"
            for row, counts in tallies.items()]
    return [f"<p>Against {escape(display_name(table.baseline))}, over pairs:</p>", "<table>",
            f"<thead><tr>{header}</tr></thead>", "<tbody>", *rows, "</tbody>", "</table>"]


def across_table(table: LeaderTable) -> list[str]:
    """Mean rank and IQM across pairs with their 95% stratified-bootstrap intervals."""
    if not table.across:
        return []
    rows = []
    for row, across in table.across.items():
        rank, iqm = cell_text.across_text(across)
        rows.append(f"<tr><td>{escape(display_name(row))}</td><td>{escape(rank)}</td>"
                    f"<td>{escape(iqm)}</td><td>{across.pairs_present}</td></tr>")
    header = "".join(f"<th>{text}</th>" for text in ("Loss", "mean rank", "IQM (%)", "pairs"))
    return ["<p>Across pairs (rank 1 = best; IQM: interquartile mean of all runs; 95% "
            "stratified-bootstrap intervals):</p>", "<table>",
            f"<thead><tr>{header}</tr></thead>", "<tbody>", *rows, "</tbody>", "</table>"]


def agreement_table(table: LeaderTable) -> list[str]:
    """Teacher-student top-1 agreement (%) and KL on the test set, per row and pair."""
    header = "".join(f"<th>{escape(text)}</th>" for text in
                     ["Agreement (%)", *(pair.label for pair in table.pairs)])
    rows = [f"<tr><td>{escape(display_name(row))}</td>"
            + "".join(f"<td>{escape(cell_text.agreement_text(table.cell(row, pair)))}</td>"
                      for pair in table.pairs) + "</tr>"
            for row in table.rows if row != "teacher"]
    return ["<p>Teacher-student top-1 agreement on the test set, mean ± std (n), and the mean "
            "KL(teacher || student) in nats:</p>", "<table>",
            f"<thead><tr>{header}</tr></thead>", "<tbody>", *rows, "</tbody>", "</table>"]


def _cell(show_published: bool, cell: Cell | None) -> str:
    if cell is None:
        return cell_text.EMPTY
    text = escape(cell_text.summary_text(cell.summary))
    if cell.best:
        text = f"<strong>{text}</strong>"
    mark = cell_text.significance_mark(cell.comparison)
    if mark:
        css = {cell_text.WIN_MARK: "win", cell_text.LOSS_MARK: "loss",
               cell_text.EQUIVALENT_MARK: "equiv"}.get(mark, "notest")
        title = escape(_mark_title(cell.comparison))
        text += f' <span class="{css}" title="{title}">{mark}</span>'
    if show_published:
        text += f' <span class="pub">{escape(cell_text.published_text(cell))}</span>'
    return text


def _mark_title(comparison) -> str:
    """The hover text of a verdict mark: the verdict and its p-values."""
    parts = [comparison.verdict]
    if comparison.p_value is not None:
        parts.append(f"p = {comparison.p_value:.3g}")
    if comparison.p_adjusted is not None:
        parts.append(f"Holm p = {comparison.p_adjusted:.3g}")
    if comparison.seeds_needed is not None and comparison.verdict == "inconclusive":
        parts.append(f"{comparison.seeds_needed} seeds would decide")
    return ", ".join(parts)
