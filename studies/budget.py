"""The budget and schedule of a study, recorded as study user attributes.

Fairness: tuning a suite gives every loss the same number of trials, the same recipe and epochs,
the same search-space kind, pruner and sampler seed. Each study records these (``budget`` below)
so ``kdbench studies show`` can prove it, and a later ``kdbench tune`` that joins an existing
study with a different schedule is refused instead of silently mixing two schedules. Only the
number of trials may grow (ask for more to extend a study).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from benchmark.errors import user_error

TRIALS_ATTR = "trials"


@dataclass(frozen=True)
class StudyBudget:
    """Everything that must be equal across the studies of one tuning campaign."""

    trials: int
    epochs: int
    recipe: str
    batch_size: int
    space: str
    pruner: str
    sampler: str
    sampler_seed: int
    train_seed: int
    val_fraction: float
    split_seed: int

    @classmethod
    def for_target(cls, target, *, trials: int, space: str, pruner: str, sampler: str,
                   seed: int) -> "StudyBudget":
        base = target.base
        return cls(trials=trials, epochs=base.recipe.epochs, recipe=base.recipe.name,
                   batch_size=base.recipe.batch_size, space=space, pruner=pruner,
                   sampler=sampler, sampler_seed=seed, train_seed=base.seed,
                   val_fraction=base.val_fraction, split_seed=base.split_seed)

    def attrs(self) -> dict:
        return asdict(self)


def target_attrs(target) -> dict:
    """What the study tunes (also recorded on the study)."""
    return {"suite": target.suite, "dataset": target.dataset, "teacher": target.teacher,
            "student": target.student, "loss": target.loss, "tuned_terms": list(target.terms),
            "base_terms": {t: w for t, w in target.base.terms},
            "objective": "val_acc of the last epoch (held-out split of the training set)"}


def record_budget(study, budget: StudyBudget, target) -> None:
    """Write the budget on a new study, or check it against the one already recorded."""
    existing = study.user_attrs
    if "epochs" in existing:
        _check_same_schedule(study.study_name, existing, budget)
    wanted = {**target_attrs(target), **budget.attrs()}
    wanted[TRIALS_ATTR] = max(budget.trials, int(existing.get(TRIALS_ATTR, 0)))
    for key, value in wanted.items():
        if existing.get(key) != value:
            study.set_user_attr(key, value)


def _check_same_schedule(name: str, existing: dict, budget: StudyBudget) -> None:
    for key, value in budget.attrs().items():
        if key == TRIALS_ATTR or key not in existing:
            continue
        if existing[key] != value:
            raise user_error(
                f"study '{name}' was run with {key}={existing[key]!r}, this command asks "
                f"for {key}={value!r}", "--study-name / --storage",
                f"rerun with the study's settings ({key}={existing[key]!r}) to continue it, or "
                "pass another --study-name (or --storage) to start a separate study")
