"""Build the leaderboard from a suite's runs: one published-style table per dataset.

Input: the frame of :func:`benchmark.leaderboard.collect.collect_runs`. Counted runs (see
:mod:`.selection`) are grouped per (loss, teacher -> student pair); the Teacher row comes from the
suite's teacher-training runs of the pair's teacher architecture on that dataset. Every loss and
the Student row are tested against the baseline loss of the same pair; published values are
attached wherever the papers report the same dataset, pair and method.
"""

from __future__ import annotations

import difflib

import pandas as pd

from benchmark.errors import user_error
from benchmark.leaderboard.aggregate import mark_best, row_averages
from benchmark.leaderboard.collect import METRIC_COLUMNS
from benchmark.leaderboard.layout import TEACHER_ROW, Pair, order_pairs, order_rows
from benchmark.leaderboard.published import published_pair_order, published_values
from benchmark.leaderboard.selection import select_runs
from benchmark.leaderboard.stats import IS_BASELINE, NO_BASELINE, Comparison, summarize, welch_test
from benchmark.leaderboard.table import Cell, CellConfig, ExcludedRun, Leaderboard, LeaderTable

DEFAULT_BASELINE = "sp"


def build_leaderboard(runs: pd.DataFrame, suite: str, *, metric: str = "last",
                      baseline: str = DEFAULT_BASELINE, published: pd.DataFrame | None = None,
                      show_published: bool = False, dataset: str | None = None,
                      planned: dict | None = None, all_configs: bool = False) -> Leaderboard:
    """The suite's leaderboard: a :class:`LeaderTable` per dataset, datasets sorted.

    ``planned`` (cell key -> RunSpec, :func:`.selection.planned_specs`) pins each cell to the
    suite's own configuration; ``all_configs`` shows other configurations as their own rows.
    """
    if metric not in METRIC_COLUMNS:
        raise user_error(f"Unknown metric '{metric}'", "--metric",
                         f"Use one of: {', '.join(METRIC_COLUMNS)}")
    runs = _only_dataset(runs, dataset)
    counted, excluded = select_runs(runs, METRIC_COLUMNS[metric], planned=planned,
                                    all_configs=all_configs)
    published = published if published is not None else pd.DataFrame(
        columns=["dataset", "metric", "teacher", "student", "method"])
    tables = []
    for name in sorted(set(runs["dataset"])):
        table = build_table(name, counted[counted["dataset"] == name],
                            [run for run in excluded if run.dataset == name],
                            metric_column=METRIC_COLUMNS[metric], baseline=baseline,
                            published=published)
        tables.append(table)
    board = Leaderboard(suite=suite, metric=metric, baseline=baseline, tables=tables,
                        with_published=show_published)
    board.notes.extend(_board_notes(runs, baseline, metric, show_published))
    if show_published:
        for table in tables:
            if table.pairs and not table.has_published:
                table.notes.append(f"No published numbers for dataset '{table.dataset}' "
                                   "and these pairs.")
    return board


def build_table(dataset: str, counted: pd.DataFrame, excluded: list[ExcludedRun], *,
                metric_column: str, baseline: str, published: pd.DataFrame) -> LeaderTable:
    """One dataset's table from its counted runs."""
    students = counted[counted["role"] != "teacher"]
    teachers = counted[counted["role"] == "teacher"]
    pairs = order_pairs({Pair(t, s) for t, s in zip(students["teacher"], students["student"])},
                        published_pair_order(published, dataset))
    values = _student_values(students, metric_column)
    values.update(_teacher_values(teachers, pairs, metric_column))
    rows = order_rows(row for row, _ in values)
    lookup = published_values(published, dataset)
    configs = _cell_configs(students, teachers, pairs)
    cells = {key: Cell(summarize(vals), tuple(vals), published=lookup.get(key),
                       config=configs.get(key, CellConfig()))
             for key, vals in values.items()}
    _compare_with_baseline(cells, pairs, baseline, values)
    averages = row_averages(rows, pairs, cells)
    mark_best(rows, pairs, cells, averages)
    title = dataset or "(runs without a dataset tag)"
    if metric_column != METRIC_COLUMNS["last"]:
        title += ": best epoch (not the protocol number)"
    table = LeaderTable(title=title, dataset=dataset, pairs=pairs, rows=rows, cells=cells,
                        averages=averages, baseline=baseline, excluded=excluded)
    table.notes.extend(_table_notes(counted, teachers, pairs, rows, baseline))
    return table


def _student_values(students: pd.DataFrame, metric_column: str) -> dict:
    """(loss, pair) -> per-seed values, ordered by seed for reproducible output."""
    values = {}
    ordered = students.sort_values(["seed", "start_time"], kind="stable")
    for (loss, teacher, student), group in ordered.groupby(["loss", "teacher", "student"],
                                                          sort=False):
        values[(loss, Pair(teacher, student))] = [float(v) for v in group[metric_column]]
    return values


def _cell_configs(students: pd.DataFrame, teachers: pd.DataFrame, pairs: list[Pair]) -> dict:
    """(row, pair) -> the configuration its runs share (weights, hparams, recipe, hashes)."""
    configs = {}
    for (loss, teacher, student), group in students.groupby(["loss", "teacher", "student"]):
        configs[(loss, Pair(teacher, student))] = cell_config(group)
    architecture = teachers["teacher"].where(teachers["teacher"] != "", teachers["student"])
    for pair in pairs:
        group = teachers[architecture == pair.teacher]
        if len(group):
            configs[(TEACHER_ROW, pair)] = cell_config(group)
    return configs


def cell_config(group: pd.DataFrame) -> CellConfig:
    """The shared configuration of one cell's runs, read from their ``kdbench.spec`` tags."""
    from benchmark.plan import RunSpec

    hashes = tuple(sorted(h for h in group.get("config_hash", ()) if h))
    specs = [RunSpec.from_json(text) for text in group.get("spec", ()) if text]
    if not specs:
        return CellConfig(setting_hash=next(iter(group.get("setting_hash", ())), ""),
                          config_hashes=hashes)
    spec = specs[0]
    recipe = spec.recipe
    return CellConfig(
        setting_hash=spec.setting_hash, config_hashes=hashes,
        weights=" ".join(f"{t}={w:g}" for t, w in spec.terms),
        hparams=" ".join(f"{t}.{k}={v}" for t, values in spec.hparams for k, v in values),
        recipe=f"{recipe.name} {recipe.epochs} ep, batch {recipe.batch_size}"
               f"{', scaled' if recipe.scaled else ''}",
        options=", ".join(p for p in (spec.amp or "fp32",
                                      "channels_last" if spec.channels_last else "") if p))


def _teacher_values(teachers: pd.DataFrame, pairs: list[Pair], metric_column: str) -> dict:
    """(teacher, pair) -> values of the teacher-training runs of the pair's teacher arch."""
    architecture = teachers["teacher"].where(teachers["teacher"] != "", teachers["student"])
    values = {}
    for pair in pairs:
        matching = teachers[architecture == pair.teacher].sort_values("seed", kind="stable")
        if len(matching):
            values[(TEACHER_ROW, pair)] = [float(v) for v in matching[metric_column]]
    return values


def _compare_with_baseline(cells: dict, pairs: list[Pair], baseline: str, values: dict) -> None:
    for (row, pair), cell in cells.items():
        if row == TEACHER_ROW:
            continue
        if row == baseline:
            cell.comparison = Comparison(IS_BASELINE)
        elif (baseline, pair) not in values:
            cell.comparison = Comparison(NO_BASELINE)
        else:
            cell.comparison = welch_test(values[(row, pair)], values[(baseline, pair)])


def _only_dataset(runs: pd.DataFrame, dataset: str | None) -> pd.DataFrame:
    if dataset is None:
        return runs
    known = sorted(set(runs["dataset"]) - {""})
    if dataset not in known:
        close = difflib.get_close_matches(dataset, known, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise user_error(f"No runs on dataset '{dataset}' in this suite", "--dataset",
                         f"Datasets with runs: {', '.join(known) or 'none'}.{hint}")
    return runs[runs["dataset"] == dataset]


def _table_notes(counted, teachers, pairs, rows, baseline) -> list[str]:
    notes = []
    if baseline not in rows:
        notes.append(f"No finished runs of the baseline '{baseline}' on this dataset: "
                     "no tests.")
    if pairs and teachers.empty:
        notes.append("No finished teacher-training runs on this dataset: Teacher row empty.")
    if (counted["scaled"] == "true").any():
        notes.append("Scaled runs (epochs or batch size overridden): not comparable with the "
                     "published protocol numbers.")
    return notes


def _board_notes(runs, baseline, metric, show_published) -> list[str]:
    notes = []
    if runs.empty:
        notes.append("The suite's experiment has no runs yet.")
    elif baseline not in set(runs["loss"]):
        losses = sorted(set(runs["loss"]) - {"teacher", ""})
        notes.append(f"The baseline '{baseline}' (--against) has no runs in this suite; "
                     f"losses with runs: {', '.join(losses)}.")
    if show_published and metric != "last":
        notes.append("Published numbers are last-epoch numbers; the differences compare them "
                     "with best-epoch numbers.")
    return notes
