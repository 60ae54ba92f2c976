"""What a ``kdbench tune`` invocation tunes: one target per (dataset, pair, loss label).

A target carries the *base* run spec its trials start from: the suite's recipe (epochs
overridable), the first training seed of the pair, and a validation split held out of the
training set (the suite's ``val_fraction``, or 0.1 when the suite has none: a study never looks at
the test set). The tuned term's weight in the base spec is a placeholder that every trial
replaces with its sampled value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional

from benchmark.config import LossConfig, SuiteConfig
from benchmark.errors import user_error
from benchmark.plan import PlanOptions, RunSpec, expand_suite
from benchmark.records import TUNE_SUFFIX  # noqa: F401  (the schema's one home)

STUDY_VAL_FRACTION = 0.1


@dataclass(frozen=True)
class TuneTarget:
    """One study: a leaderboard label on one dataset and teacher -> student pair."""

    suite: str
    dataset: str
    teacher: str
    student: str
    loss: str
    terms: tuple[str, ...]  # the tuned terms
    base: RunSpec
    pinned: dict = field(default_factory=dict)  # term -> hparams the suite fixes
    ranges: dict = field(default_factory=dict)  # term -> (low, high) the suite searches

    def study_name(self, prefix: Optional[str] = None) -> str:
        prefix = prefix or f"kdbench-{self.suite}"
        return f"{prefix}.{self.dataset}.{self.teacher}.{self.student}.{self.loss}"

    def describe(self) -> str:
        return f"{self.loss} on {self.dataset} {self.teacher} -> {self.student}"


@dataclass
class TargetFilter:
    """The ``--dataset/--teacher/--student/--loss`` selections (empty: everything)."""

    datasets: list[str] = field(default_factory=list)
    teachers: list[str] = field(default_factory=list)
    students: list[str] = field(default_factory=list)
    losses: list[str] = field(default_factory=list)


def tuning_suite(suite: SuiteConfig, losses: Iterable[str] = ()) -> SuiteConfig:
    """The suite as a study sees it: a held-out validation split, the requested labels, and
    the tuned terms' weights set to their defaults (they are sampled anyway)."""
    from studies.space import tuned_terms

    configs = [_as_config(loss) for loss in suite.losses]
    known = {c.label for c in configs}
    configs += [_as_config(label) for label in losses if label not in known]
    prepared = []
    for config in configs:
        tuned = set(tuned_terms(config.terms))
        terms = {t: ("default" if t in tuned else w) for t, w in config.terms.items()}
        prepared.append(config.model_copy(update={"terms": terms}))
    return suite.model_copy(update={
        "name": suite.name + TUNE_SUFFIX, "losses": prepared,
        "val_fraction": suite.val_fraction or STUDY_VAL_FRACTION,
    })


def _as_config(loss) -> LossConfig:
    from losses.composite import expand_loss_label

    if isinstance(loss, LossConfig):
        return loss
    return LossConfig(label=loss, terms=expand_loss_label(loss))


def select_targets(suite: SuiteConfig, selection: TargetFilter, *, epochs: Optional[int] = None,
                   train_seed: Optional[int] = None) -> list[TuneTarget]:
    """Every target of the suite that the filter keeps; labels without a term to tune
    (the CE-only ``student`` baseline) are skipped, or refused when asked for by name."""
    from studies.space import tuned_terms

    prepared = tuning_suite(suite, selection.losses)
    _check_filter(prepared, selection)
    options = PlanOptions(epochs=epochs, seeds=[train_seed] if train_seed is not None else None)
    targets: dict[tuple, TuneTarget] = {}
    for spec in expand_suite(prepared, options):
        if not _kept(spec, selection):
            continue
        key = (spec.dataset, spec.teacher, spec.student, spec.loss)
        terms = tuple(tuned_terms(t for t, _ in spec.terms))
        if key in targets or not terms:
            continue
        targets[key] = TuneTarget(suite=suite.name, dataset=spec.dataset, teacher=spec.teacher,
                                  student=spec.student, loss=spec.loss, terms=terms, base=spec,
                                  pinned=_pinned_hparams(spec),
                                  ranges={t: tuple(r) for t, r in suite.weight_ranges.items()
                                          if t in terms})
    if not targets:
        raise user_error("the selection leaves nothing to tune",
                         f"suite '{suite.name}' with {_describe(selection)}",
                         "pick at least one distillation loss (the CE-only 'student' baseline "
                         "has no weight to tune)")
    return list(targets.values())


def _pinned_hparams(spec: RunSpec) -> dict[str, tuple[str, ...]]:
    return {term: tuple(name for name, _ in items) for term, items in spec.hparams}


def _kept(spec: RunSpec, selection: TargetFilter) -> bool:
    """Whether the filter keeps the row; the random-teacher control only when named (it uses
    its method's tuned weight: the entry of its term, ``kd``)."""
    checks = ((selection.datasets, spec.dataset), (selection.teachers, spec.teacher),
              (selection.students, spec.student), (selection.losses, spec.loss))
    if spec.teacher_init == "random" and spec.loss not in selection.losses:
        return False
    return all(not wanted or value in wanted for wanted, value in checks)


def _check_filter(suite: SuiteConfig, selection: TargetFilter) -> None:
    """An option value that matches nothing in the suite is a mistake worth a message."""
    available = {
        "--dataset": set(suite.datasets),
        "--teacher": {p.teacher for p in suite.pairs},
        "--student": {p.student for p in suite.pairs},
    }
    given = {"--dataset": selection.datasets, "--teacher": selection.teachers,
             "--student": selection.students}
    for option, values in given.items():
        unknown = [v for v in values if v not in available[option]]
        if unknown:
            raise user_error(f"{option} {', '.join(unknown)} is not in suite '{suite.name}'",
                             option, f"choose from: {', '.join(sorted(available[option]))}")


def _describe(selection: TargetFilter) -> str:
    parts = [f"{name}={','.join(values)}" for name, values in
             (("dataset", selection.datasets), ("teacher", selection.teachers),
              ("student", selection.students), ("loss", selection.losses)) if values]
    return "filters " + " ".join(parts) if parts else "no filters"
