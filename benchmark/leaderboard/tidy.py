"""The leaderboard as a tidy frame (``leaderboard.csv``): one row per dataset, pair and row label.

Columns: suite, dataset, table, metric, teacher, student, pair, loss, mean, std (sample, ddof=1),
n, baseline, p_value (Welch against the baseline; blank when not tested), verdict, best,
published, published_std, diff (ours minus published), published_source, and the row's
configuration: setting_hash, config_hashes (the runs averaged), weights, hparams, recipe,
options (precision, memory format).
"""

from __future__ import annotations

import dataclasses
import io
import math

import pandas as pd

from benchmark.leaderboard.table import CellConfig, Leaderboard

#: The configuration each row was produced with (one per cell, see :class:`CellConfig`).
CONFIG_COLUMNS = tuple(f.name for f in dataclasses.fields(CellConfig))

TIDY_COLUMNS = ("suite", "dataset", "table", "metric", "teacher", "student", "pair", "loss",
                "mean", "std", "n", "baseline", "p_value", "verdict", "best", "published",
                "published_std", "diff", "published_source", *CONFIG_COLUMNS)


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
                    "verdict": cell.comparison.verdict if cell.comparison else "",
                    "best": cell.best,
                    "published": published.value if published else math.nan,
                    "published_std": published.std if published else math.nan,
                    "diff": cell.diff,
                    "published_source": f"{published.source}, {published.table}"
                    if published else "",
                    **{name: _plain(getattr(cell.config, name)) for name in CONFIG_COLUMNS},
                })
    frame = pd.DataFrame.from_records(records, columns=list(TIDY_COLUMNS))
    frame["n"] = frame["n"].astype("Int64")
    return frame


def _plain(value):
    return " ".join(value) if isinstance(value, tuple) else value


def render_csv(board: Leaderboard) -> str:
    buffer = io.StringIO()
    tidy_frame(board).to_csv(buffer, index=False, lineterminator="\n", float_format="%.6g")
    return buffer.getvalue()
