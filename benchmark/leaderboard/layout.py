"""The published table layout: which rows and columns a leaderboard table has, and in what order.

Rows: Teacher, Student (the CE-only baseline, ``loss`` tag ``student``), then each loss in the
order the CRD paper's tables list them (Table 1, then the "+KD" rows of Table 7), then any other
loss alphabetically. Columns: one per teacher -> student pair, in the published order where the
pair is published, the rest sorted, then an Average column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

TEACHER_ROW = "teacher"
STUDENT_ROW = "student"
LEADING_ROWS = (TEACHER_ROW, STUDENT_ROW)

#: The row order of the published tables (CRD Tables 1, 2, 7 and 8, SP Table 1).
PUBLISHED_LOSS_ORDER = (
    "kd", "fitnet", "at", "sp", "cc", "vid", "rkd", "pkt", "ab", "ft", "fsp", "nst", "crd",
    "crd+kd", "fitnet+kd", "at+kd", "sp+kd", "cc+kd", "vid+kd", "rkd+kd", "pkt+kd", "ab+kd",
    "ft+kd", "nst+kd", "crd+pkt",
)

#: How the papers spell the row labels; any other loss keeps its tag.
DISPLAY_NAMES = {
    "teacher": "Teacher", "student": "Student", "kd": "KD", "fitnet": "FitNet", "at": "AT",
    "sp": "SP", "cc": "CC", "vid": "VID", "rkd": "RKD", "pkt": "PKT", "ab": "AB", "ft": "FT",
    "fsp": "FSP", "nst": "NST", "crd": "CRD",
    "dkd": "DKD", "dist": "DIST", "reviewkd": "ReviewKD", "nkd": "NKD", "wttm": "WTTM",
    "srrl": "SRRL", "ofd": "OFD", "simkd": "SimKD", "kdsvd": "KD-SVD",
}

#: Logit modifiers (``host@modifier`` terms, losses.modifiers) as the papers name them.
MODIFIER_NAMES = {"ls": "LS", "ctkd": "CTKD"}

AVERAGE_COLUMN = "Average"


@dataclass(frozen=True, order=True)
class Pair:
    """One leaderboard column: a teacher architecture distilled into a student architecture."""

    teacher: str
    student: str

    @property
    def label(self) -> str:
        return f"{self.teacher} -> {self.student}"


def display_name(row: str) -> str:
    """The row label as the papers print it (``sp+kd`` -> ``SP+KD``, ``dkd@ls`` ->
    ``DKD + LS``); unknown losses unchanged."""
    parts = [_display_term(part) for part in row.split("+")]
    if all(part is not None for part in parts):
        return "+".join(parts)
    return row


def _display_term(term: str) -> str | None:
    host, *modifiers = term.split("@")
    if host not in DISPLAY_NAMES or any(m not in MODIFIER_NAMES for m in modifiers):
        return None
    return " + ".join([DISPLAY_NAMES[host], *(MODIFIER_NAMES[m] for m in modifiers)])


def is_loss_row(row: str) -> bool:
    """True for distillation-loss rows (the ones that compete for 'best in column')."""
    return row not in LEADING_ROWS


def order_rows(rows: Iterable[str]) -> list[str]:
    """Teacher, Student, the published losses in published order, then the rest alphabetically."""
    present = set(rows)
    leading = [row for row in LEADING_ROWS if row in present]
    published = [row for row in PUBLISHED_LOSS_ORDER if row in present]
    others = sorted(present - set(leading) - set(published))
    return leading + published + others


def order_pairs(pairs: Iterable[Pair], published_order: Sequence[Pair] = ()) -> list[Pair]:
    """Published pairs in their published order, then unpublished pairs sorted."""
    present = set(pairs)
    published = [pair for pair in dict.fromkeys(published_order) if pair in present]
    return published + sorted(present - set(published))
