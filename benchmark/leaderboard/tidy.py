"""The leaderboard as a tidy frame (``leaderboard.csv``): one row per dataset, pair and row label.

Columns: suite, dataset, table, metric, teacher, student, pair, loss, mean, std (sample, ddof=1),
n, baseline, p_value (the chosen test's raw p against the baseline; blank when not tested),
p_adjusted (Holm over the table), verdict (better / worse / equivalent / inconclusive / a
no-test reason), best, published, published_std, diff (ours minus published),
published_source; every statistic of the comparison (:data:`EVIDENCE_COLUMNS`: the test, the
matched seeds, the mean difference, its sd and 95% bootstrap interval, P(A > B), the paired t,
Wilcoxon, Welch and TOST p-values, delta, the teacher seeds and the teacher-seed ANOVA p), the
Holm-adjusted TOST p and the seeds that would decide it (difference, equivalence, the smaller);
the row's mean rank and IQM across pairs with their intervals; the teacher agreement and KL
means and stds; and the row's configuration: setting_hash, config_hashes (the runs averaged),
weights, hparams, recipe, options (precision, memory format).
"""

from __future__ import annotations

import dataclasses
import io
import math

import pandas as pd

from benchmark.leaderboard.across import AcrossPairs
from benchmark.leaderboard.paired import Evidence
from benchmark.leaderboard.table import Cell, CellConfig, Leaderboard

#: The configuration each row was produced with (one per cell, see :class:`CellConfig`).
CONFIG_COLUMNS = tuple(f.name for f in dataclasses.fields(CellConfig))

#: :class:`Evidence` field -> CSV column.
EVIDENCE_COLUMNS = {f.name: {"n": "n_compared", "sd": "difference_sd"}.get(f.name, f.name)
                    for f in dataclasses.fields(Evidence)}

DECISION_COLUMNS = ("p_tost_adjusted", "seeds_for_difference", "seeds_for_equivalence",
                    "seeds_needed")

ACROSS_COLUMNS = tuple(f.name for f in dataclasses.fields(AcrossPairs))

AGREEMENT_COLUMNS = ("agreement", "agreement_std", "kl", "kl_std")

TIDY_COLUMNS = ("suite", "dataset", "table", "metric", "teacher", "student", "pair", "loss",
                "mean", "std", "n", "baseline", "p_value", "p_adjusted", "verdict", "best",
                "published", "published_std", "diff", "published_source", "published_flags",
                *EVIDENCE_COLUMNS.values(), *DECISION_COLUMNS, *ACROSS_COLUMNS,
                *AGREEMENT_COLUMNS, *CONFIG_COLUMNS)


def tidy_frame(board: Leaderboard) -> pd.DataFrame:
    """Every filled cell of every table as one row of :data:`TIDY_COLUMNS`."""
    records = []
    for table in board.tables:
        for row in table.rows:
            for pair in table.pairs:
                cell = table.cell(row, pair)
                if cell is None:
                    continue
                published = cell.published
                records.append({
                    "suite": board.suite, "dataset": table.dataset, "table": table.title,
                    "metric": board.metric, "teacher": pair.teacher, "student": pair.student,
                    "pair": pair.label, "loss": row, "mean": cell.summary.mean,
                    "std": cell.summary.std, "n": cell.summary.n, "baseline": table.baseline,
                    "p_value": cell.comparison.p_value if cell.comparison else None,
                    "p_adjusted": cell.comparison.p_adjusted if cell.comparison else None,
                    "verdict": cell.comparison.verdict if cell.comparison else "",
                    "best": cell.best,
                    "published": published.value if published else math.nan,
                    "published_std": published.std if published else math.nan,
                    "diff": cell.diff,
                    "published_source": f"{published.source}, {published.table}"
                    if published else "",
                    "published_flags": "; ".join(published.flags) if published else "",
                    **_statistics(cell), **_across(table.across.get(row)),
                    **_agreement(cell),
                    **{name: _plain(getattr(cell.config, name)) for name in CONFIG_COLUMNS},
                })
    frame = pd.DataFrame.from_records(records, columns=list(TIDY_COLUMNS))
    for column in ("n", "n_compared", "teacher_seeds", "pairs_present", *DECISION_COLUMNS[1:]):
        frame[column] = pd.to_numeric(frame[column]).astype("Int64")
    return frame


def _statistics(cell: Cell) -> dict:
    """The comparison's evidence and decision columns (blank when there was no test)."""
    comparison = cell.comparison
    evidence = comparison.evidence if comparison is not None else None
    out = {column: (getattr(evidence, name) if evidence is not None else None)
           for name, column in EVIDENCE_COLUMNS.items()}
    for name in DECISION_COLUMNS:
        out[name] = getattr(comparison, name) if evidence is not None else None
    return out


def _across(across: AcrossPairs | None) -> dict:
    return {name: getattr(across, name) if across else None for name in ACROSS_COLUMNS}


def _agreement(cell: Cell) -> dict:
    agreement, kl = cell.agreement, cell.kl
    return {"agreement": agreement.mean if agreement else None,
            "agreement_std": agreement.std if agreement else None,
            "kl": kl.mean if kl else None, "kl_std": kl.std if kl else None}


def _plain(value):
    return " ".join(value) if isinstance(value, tuple) else value


def render_csv(board: Leaderboard) -> str:
    buffer = io.StringIO()
    tidy_frame(board).to_csv(buffer, index=False, lineterminator="\n", float_format="%.6g")
    return buffer.getvalue()
