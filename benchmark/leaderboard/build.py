"""Build the leaderboard from a suite's runs: one published-style table per dataset.

Input: the frame of :func:`benchmark.leaderboard.collect.collect_runs`. Counted runs (see
:mod:`.selection`) are grouped per (loss, teacher -> student pair); the Teacher row comes from the
suite's teacher-training runs of the pair's teacher architecture on that dataset. Every loss and
the Student row are tested against the baseline loss of the same pair, paired by (teacher seed,
student seed) (:mod:`.paired`), with Holm's correction over the table's pairs x losses and a
four-outcome verdict (:mod:`.verdicts`); every row gets its mean rank and IQM across pairs
(:mod:`.across`); published values are attached wherever the papers report the same dataset,
pair and method.
"""

from __future__ import annotations

import difflib

import pandas as pd

from benchmark.config import DEFAULT_BASELINE
from benchmark.errors import user_error
from benchmark.leaderboard.across import across_pairs
from benchmark.leaderboard.aggregate import mark_best, row_averages
from benchmark.leaderboard.collect import METRIC_COLUMNS
from benchmark.leaderboard.layout import TEACHER_ROW, Pair, order_pairs, order_rows
from benchmark.leaderboard.paired import DEFAULT_DELTA, DEFAULT_TEST, TESTS, gather_evidence
from benchmark.leaderboard.published import published_pair_order, published_values
from benchmark.leaderboard.selection import select_runs
from benchmark.leaderboard.stats import IS_BASELINE, NO_BASELINE, Comparison, summarize
from benchmark.leaderboard.table import Cell, CellConfig, ExcludedRun, Leaderboard, LeaderTable
from benchmark.leaderboard.verdicts import decide
from benchmark.records import Metric


def build_leaderboard(runs: pd.DataFrame, suite: str, *, metric: str = "last",
                      baseline: str = DEFAULT_BASELINE, published: pd.DataFrame | None = None,
                      show_published: bool = False, dataset: str | None = None,
                      planned: dict | None = None, all_configs: bool = False,
                      test: str = DEFAULT_TEST, delta: float = DEFAULT_DELTA,
                      agreement: bool = False) -> Leaderboard:
    """The suite's leaderboard: a :class:`LeaderTable` per dataset, datasets sorted.

    ``planned`` (cell key -> RunSpec, :func:`.selection.planned_specs`) pins each cell to the
    suite's own configuration; ``all_configs`` shows other configurations as their own rows.
    ``test`` (paired, wilcoxon, welch) and ``delta`` (the equivalence margin, points) choose
    the comparison; ``agreement`` shows the teacher-agreement table too.
    """
    if metric not in METRIC_COLUMNS:
        raise user_error(f"Unknown metric '{metric}'", "--metric",
                         f"Use one of: {', '.join(METRIC_COLUMNS)}")
    check_test_options(test, delta)
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
                            published=published, test=test, delta=delta)
        tables.append(table)
    board = Leaderboard(suite=suite, metric=metric, baseline=baseline, tables=tables,
                        with_published=show_published, test=test, delta=delta,
                        agreement=agreement)
    board.notes.extend(_board_notes(runs, baseline, metric, show_published))
    if show_published:
        for table in tables:
            if table.pairs and not table.has_published:
                table.notes.append(f"No published numbers for dataset '{table.dataset}' "
                                   "and these pairs.")
    return board


def check_test_options(test: str, delta: float) -> None:
    """``--test`` is one of :data:`.paired.TESTS` and ``--delta`` a positive margin."""
    if test not in TESTS:
        raise user_error(f"Unknown test '{test}'", "--test", f"Use one of: {', '.join(TESTS)}")
    if not delta > 0:
        raise user_error(f"The equivalence margin must be positive, got {delta}", "--delta",
                         "Pass a margin in accuracy points, e.g. --delta 0.5")


def build_table(dataset: str, counted: pd.DataFrame, excluded: list[ExcludedRun], *,
                metric_column: str, baseline: str, published: pd.DataFrame,
                test: str = DEFAULT_TEST, delta: float = DEFAULT_DELTA) -> LeaderTable:
    """One dataset's table from its counted runs."""
    students = counted[counted["role"] != "teacher"]
    teachers = counted[counted["role"] == "teacher"]
    pairs = order_pairs({Pair(t, s) for t, s in zip(students["teacher"], students["student"])},
                        published_pair_order(published, dataset))
    groups = _student_groups(students)
    groups.update(_teacher_groups(teachers, pairs))
    rows = order_rows(row for row, _ in groups)
    lookup = published_values(published, dataset)
    configs = _cell_configs(students, teachers, pairs)
    cells = {key: _cell(group, metric_column, published=lookup.get(key),
                        config=configs.get(key, CellConfig()))
             for key, group in groups.items()}
    _compare_with_baseline(cells, baseline, test, delta)
    averages = row_averages(rows, pairs, cells)
    mark_best(rows, pairs, cells, averages)
    title = dataset or "(runs without a dataset tag)"
    if metric_column != METRIC_COLUMNS["last"]:
        title += ": best epoch (not the protocol number)"
    table = LeaderTable(title=title, dataset=dataset, pairs=pairs, rows=rows, cells=cells,
                        averages=averages, baseline=baseline, excluded=excluded)
    table.across = across_pairs({key: cell.values for key, cell in cells.items()},
                                [row for row in rows if row != TEACHER_ROW], pairs)
    table.notes.extend(_table_notes(counted, teachers, pairs, rows, baseline))
    table.notes.extend(_teacher_notes(cells))
    return table


def _cell(group: pd.DataFrame, metric_column: str, **extra) -> Cell:
    """A cell from its runs (sorted by teacher seed, seed): values, pairing keys, agreement."""
    values = tuple(float(v) for v in group[metric_column])
    teacher_seeds = group["teacher_seed"] if "teacher_seed" in group else ["0"] * len(group)
    keys = tuple((str(t), str(s)) for t, s in zip(teacher_seeds, group["seed"]))
    return Cell(summarize(values), values, keys=keys,
                agreement=_optional_summary(group, Metric.TEST_AGREEMENT),
                kl=_optional_summary(group, Metric.TEST_KL), **extra)


def _optional_summary(group: pd.DataFrame, column: str):
    if column not in group:
        return None
    values = pd.to_numeric(group[column]).dropna()
    return summarize(list(values)) if len(values) else None


def _sorted_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """Runs in (teacher seed, seed) order, numerically where the seeds are numbers."""
    order = pd.DataFrame({"t": pd.to_numeric(frame.get("teacher_seed", 0), errors="coerce"),
                          "s": pd.to_numeric(frame["seed"], errors="coerce")}, index=frame.index)
    return frame.loc[order.sort_values(["t", "s"], kind="stable").index]


def _student_groups(students: pd.DataFrame) -> dict:
    """(loss, pair) -> the cell's runs in pairing-key order, for reproducible output."""
    groups = {}
    ordered = _sorted_runs(students.sort_values("start_time", kind="stable"))
    for (loss, teacher, student), group in ordered.groupby(["loss", "teacher", "student"],
                                                          sort=False):
        groups[(loss, Pair(teacher, student))] = group
    return groups


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


def _teacher_groups(teachers: pd.DataFrame, pairs: list[Pair]) -> dict:
    """(teacher, pair) -> the teacher-training runs of the pair's teacher arch."""
    architecture = teachers["teacher"].where(teachers["teacher"] != "", teachers["student"])
    groups = {}
    for pair in pairs:
        matching = _sorted_runs(teachers[architecture == pair.teacher])
        if len(matching):
            groups[(TEACHER_ROW, pair)] = matching
    return groups


def _compare_with_baseline(cells: dict, baseline: str, test: str, delta: float) -> None:
    """Every row against the baseline of its pair; one Holm family for the whole table."""
    family = {}
    for (row, pair), cell in cells.items():
        if row == TEACHER_ROW:
            continue
        if row == baseline:
            cell.comparison = Comparison(IS_BASELINE)
        elif (baseline, pair) not in cells:
            cell.comparison = Comparison(NO_BASELINE)
        else:
            family[(row, pair)] = gather_evidence(cell.by_key(), cells[(baseline, pair)].by_key(),
                                                  test=test, delta=delta)
    for key, comparison in decide(family).items():
        cells[key].comparison = comparison


def _teacher_notes(cells: dict) -> list[str]:
    """A note per comparison whose difference depends on the teacher seed (ANOVA p < 0.05)."""
    notes = []
    for (row, pair), cell in cells.items():
        evidence = cell.comparison.evidence if cell.comparison else None
        if evidence is not None and evidence.p_teacher < 0.05:
            notes.append(f"{row} on {pair.label}: its difference from the baseline depends on "
                         f"the teacher seed (ANOVA p = {evidence.p_teacher:.3g}); the seeds are "
                         "not exchangeable, add teacher seeds before trusting the verdict.")
    return notes


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
