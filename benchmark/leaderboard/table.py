"""The leaderboard's data model: cells, per-dataset tables and the whole board, format-free.

Builders (:mod:`.build`, :mod:`.published_board`) fill these; renderers (markdown, tidy CSV,
LaTeX, HTML, plot) only read them, so every output shows the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from benchmark.leaderboard.across import AcrossPairs
from benchmark.leaderboard.layout import TEACHER_ROW, Pair
from benchmark.leaderboard.paired import DEFAULT_DELTA, DEFAULT_TEST
from benchmark.leaderboard.stats import ALPHA, Comparison, Summary, tally

METRIC_LABELS = {
    "last": "test_acc_last: top-1 accuracy (%) at the last epoch, the protocol number",
    "best": "test_acc_best: best epoch (not the protocol number; selecting on test is a leak)",
    "published": "published top-1 accuracy (%) as printed in the paper",
}


@dataclass(frozen=True)
class PublishedValue:
    """One published number with its provenance; ``flags`` name where its protocol differs
    from kdbench's last-epoch, full-schedule, standard-augmentation number (``best epoch``,
    ``480 epochs``, ``strong aug``, ``secondary source``, ...; empty for a like-for-like anchor)."""

    value: float
    std: float
    runs: int | None
    source: str
    table: str
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class CellConfig:
    """The one configuration a cell's runs share (every run of a cell has the same setting)."""

    setting_hash: str = ""
    config_hashes: tuple[str, ...] = ()
    weights: str = ""
    hparams: str = ""
    recipe: str = ""
    options: str = ""


@dataclass
class Cell:
    """One (row, pair) entry: the summary over seeds, its test against the baseline, the paper.

    ``keys[i]`` is the pairing key of ``values[i]``: (teacher seed, student seed) as strings.
    ``agreement`` / ``kl``: the runs' teacher-student top-1 agreement (%) and KL on the test
    set, where they were logged."""

    summary: Summary
    values: tuple[float, ...] = ()
    comparison: Comparison | None = None
    published: PublishedValue | None = None
    best: bool = False
    config: CellConfig = field(default_factory=CellConfig)
    keys: tuple[tuple[str, str], ...] = ()
    agreement: Summary | None = None
    kl: Summary | None = None

    def by_key(self) -> dict:
        """Pairing key -> value (cells without keys: the seed order)."""
        keys = self.keys or tuple(("0", str(i)) for i in range(len(self.values)))
        return dict(zip(keys, self.values))

    @property
    def diff(self) -> float:
        """Our mean minus the published value (NaN without a published value)."""
        if self.published is None:
            return math.nan
        return self.summary.mean - self.published.value


@dataclass
class AverageCell:
    """The mean over pairs of one row's per-pair means, and how many pairs it covers."""

    mean: float
    pairs_present: int
    pairs_total: int
    best: bool = False

    @property
    def complete(self) -> bool:
        return self.pairs_present == self.pairs_total


@dataclass(frozen=True)
class ExcludedRun:
    """A run listed below the table but never averaged in (in progress, failed, ...)."""

    run_id: str
    dataset: str
    where: str
    loss: str
    seed: str
    reason: str

    @property
    def description(self) -> str:
        seed = f", seed {self.seed}" if self.seed else ""
        return f"{self.reason}: {self.where}, {self.loss or '?'}{seed} (run {self.run_id[:8]})"


@dataclass
class LeaderTable:
    """One published-style table: the pairs of one dataset as columns, the losses as rows."""

    title: str
    dataset: str
    pairs: list[Pair]
    rows: list[str]
    cells: dict[tuple[str, Pair], Cell]
    averages: dict[str, AverageCell]
    baseline: str
    excluded: list[ExcludedRun] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    across: dict[str, AcrossPairs] = field(default_factory=dict)

    def cell(self, row: str, pair: Pair) -> Cell | None:
        return self.cells.get((row, pair))

    @property
    def has_published(self) -> bool:
        """True when at least one cell has a published counterpart."""
        return any(cell.published is not None for cell in self.cells.values())

    def verdict_tally(self) -> dict[str, dict[str, int]]:
        """Per loss row: wins/ties/losses/no-test against the baseline, counted over pairs."""
        tallies = {}
        for row in self.rows:
            if row in (self.baseline, TEACHER_ROW):
                continue
            verdicts = [cell.comparison.verdict for pair in self.pairs
                        if (cell := self.cell(row, pair)) and cell.comparison]
            if verdicts:
                tallies[row] = tally(verdicts)
        return tallies


@dataclass
class Leaderboard:
    """Everything one ``kdbench leaderboard`` call shows: a table per dataset plus context."""

    suite: str
    metric: str
    baseline: str
    tables: list[LeaderTable]
    with_published: bool = False
    notes: list[str] = field(default_factory=list)
    test: str = DEFAULT_TEST
    delta: float = DEFAULT_DELTA
    alpha: float = ALPHA
    agreement: bool = False  # show the teacher-agreement table under each table

    @property
    def metric_label(self) -> str:
        return METRIC_LABELS[self.metric]
