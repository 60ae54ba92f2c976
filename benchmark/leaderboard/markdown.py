"""Render a :class:`Leaderboard` as GitHub-flavoured markdown (``leaderboard.md`` and stdout).

Per dataset: the published-style table (bold best per column, ▲/▼/≈/?/○ verdict marks,
optional published values), its legend and notes, the better/worse/equivalent/inconclusive
summary against the baseline, the mean rank and IQM across pairs with their 95% intervals, the
teacher-agreement table (``--agreement``), and the runs that were not counted (in progress,
failed with the reason, ...).
"""

from __future__ import annotations

from benchmark.leaderboard import cell_text
from benchmark.leaderboard.layout import AVERAGE_COLUMN, display_name
from benchmark.leaderboard.stats import TALLY_COLUMNS, TALLY_HEADERS
from benchmark.leaderboard.table import Cell, Leaderboard, LeaderTable


def render_markdown(board: Leaderboard) -> str:
    """The whole leaderboard as one markdown document."""
    title = ("Published results" if board.metric == "published"
             else f"kdbench leaderboard: suite `{board.suite}`")
    lines = [f"# {title}", "", cell_text.header_text(board), ""]
    lines += [f"> {note}" for note in board.notes] + ([""] if board.notes else [])
    for table in board.tables:
        lines += table_section(board, table)
    if not board.tables:
        lines += ["No runs to show yet.", ""]
    return "\n".join(lines)


def table_section(board: Leaderboard, table: LeaderTable) -> list[str]:
    lines = [f"## {table.title}", ""]
    if table.pairs:
        lines += main_table(board, table) + ["", cell_text.legend_text(board, table), ""]
    else:
        lines += ["No finished student runs on this dataset yet.", ""]
    lines += [f"> {note}" for note in table.notes] + ([""] if table.notes else [])
    lines += tally_table(table) + across_table(table)
    if board.agreement and table.pairs:
        lines += agreement_table(table)
    if table.excluded:
        lines += ["Runs not counted (listed, never averaged in):", ""]
        lines += [f"- {run.description}" for run in table.excluded] + [""]
    return lines


def main_table(board: Leaderboard, table: LeaderTable) -> list[str]:
    header = ["Accuracy (%)", *(pair.label for pair in table.pairs), AVERAGE_COLUMN]
    lines = [_row(header), _row(["---"] + ["---:"] * (len(header) - 1))]
    show_published = board.with_published and table.has_published
    for row in table.rows:
        cells = [_cell(show_published, table.cell(row, pair)) for pair in table.pairs]
        average = table.averages.get(row)
        average_text = cell_text.average_text(average)
        if average is not None and average.best:
            average_text = f"**{average_text}**"
        lines.append(_row([display_name(row), *cells, average_text]))
    return lines


def tally_table(table: LeaderTable) -> list[str]:
    """Wins/ties/losses per loss against the baseline, counted over the table's pairs."""
    tallies = table.verdict_tally()
    if not tallies:
        return []
    headers = ["Loss", *(TALLY_HEADERS[column] for column in TALLY_COLUMNS)]
    lines = [f"Against {display_name(table.baseline)}, over pairs:", "",
             _row(headers), _row(["---"] + ["---:"] * len(TALLY_COLUMNS))]
    for row, counts in tallies.items():
        lines.append(_row([display_name(row), *(str(counts[c]) for c in TALLY_COLUMNS)]))
    return lines + [""]


def across_table(table: LeaderTable) -> list[str]:
    """Mean rank and IQM of every row across the table's pairs, with 95% intervals."""
    if len(table.pairs) < 1 or not table.across:
        return []
    lines = ["Across pairs (rank 1 = best; IQM: interquartile mean of all runs; 95% "
             "stratified-bootstrap intervals):", "",
             _row(["Loss", "mean rank", "IQM (%)", "pairs"]), _row(["---", "---:", "---:", "---:"])]
    for row, across in table.across.items():
        rank, iqm = cell_text.across_text(across)
        lines.append(_row([display_name(row), rank, iqm, str(across.pairs_present)]))
    return lines + [""]


def agreement_table(table: LeaderTable) -> list[str]:
    """Top-1 agreement with the teacher (%) and KL(teacher || student) on the test set."""
    header = ["Agreement (%)", *(pair.label for pair in table.pairs)]
    lines = ["Teacher-student top-1 agreement on the test set, mean ± std (n), and the mean "
             "KL(teacher || student) in nats:", "", _row(header),
             _row(["---"] + ["---:"] * len(table.pairs))]
    for row in table.rows:
        if row == "teacher":
            continue
        cells = [cell_text.agreement_text(table.cell(row, pair)) for pair in table.pairs]
        lines.append(_row([display_name(row), *cells]))
    return lines + [""]


def _cell(show_published: bool, cell: Cell | None) -> str:
    if cell is None:
        return cell_text.EMPTY
    text = cell_text.summary_text(cell.summary)
    if cell.best:
        text = f"**{text}**"
    mark = cell_text.significance_mark(cell.comparison)
    if mark:
        text += f" {mark}"
    if show_published:
        text += f" · {cell_text.published_text(cell)}"
    return text


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"
