"""The plan: a suite expanded into runs (one per dataset x pair x loss x seed), each with a
config hash, grouped into cohorts that share a data stream and a teacher.

A :class:`RunSpec` is the complete, resolved configuration of one training run; its
``config_hash`` identifies the run in MLflow (finished runs are skipped) and names its
checkpoint. Everything that changes the result is in the hash; the suite name is not, so the same
run in two suites has the same hash.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

from pydantic import BaseModel, ConfigDict

from benchmark.config import LossConfig, SuiteConfig, model_family
from benchmark.errors import UserError
from benchmark.recipes import Recipe, get_recipe


class RunSpec(BaseModel):
    """One training run, fully resolved (weights are numbers, the recipe is explicit)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    suite: str
    role: str  # "teacher" or "student"
    dataset: str
    teacher: Optional[str]  # teacher arch; None for a teacher-training run
    student: str  # the arch being trained
    loss: str  # leaderboard row label ("teacher", "student", "kd", "sp", "sp+kd", ...)
    terms: tuple[tuple[str, float], ...]
    hparams: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()
    seed: int
    teacher_seed: int = 0
    recipe: Recipe
    val_fraction: float = 0.0
    split_seed: int = 0
    amp: Optional[str] = None
    channels_last: bool = False

    @property
    def config_hash(self) -> str:
        payload = self.model_dump(mode="json", exclude={"suite"})
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def term_weights(self) -> dict[str, float]:
        return dict(self.terms)

    def term_hparams(self, term: str) -> dict[str, Any]:
        return dict(dict(self.hparams).get(term, ()))

    @property
    def lr(self) -> float:
        return self.recipe.lr_for(self.student)

    @property
    def scaled(self) -> bool:
        return self.recipe.scaled

    def teacher_spec(self) -> "RunSpec":
        """The spec of the CE-only run that trains this run's teacher."""
        if self.teacher is None:
            raise ValueError("a teacher run has no teacher")
        return RunSpec(suite=self.suite, role="teacher", dataset=self.dataset, teacher=None,
                       student=self.teacher, loss="teacher", terms=(("ce", 1.0),),
                       seed=self.teacher_seed, teacher_seed=self.teacher_seed,
                       recipe=self.recipe, val_fraction=self.val_fraction,
                       split_seed=self.split_seed, amp=self.amp,
                       channels_last=self.channels_last)

    def cohort_key(self) -> tuple:
        """Runs with equal keys share the data stream and the teacher's forward."""
        r = self.recipe
        return (self.dataset, self.teacher, self.teacher_seed, self.seed, r.epochs,
                r.batch_size, r.augment, r.name, r.scaled, self.val_fraction, self.split_seed,
                self.amp, self.channels_last)

    def tags(self) -> dict[str, str]:
        """The MLflow tags of DESIGN.md's schema (those the spec alone decides)."""
        return {
            "kdbench.role": self.role, "suite": self.suite, "dataset": self.dataset,
            "teacher": self.teacher or self.student, "student": self.student,
            "loss": self.loss, "seed": str(self.seed), "recipe": self.recipe.name,
            "config_hash": self.config_hash, "scaled": str(self.scaled).lower(),
        }

    def params(self) -> dict[str, str]:
        """The resolved config, flattened for MLflow params."""
        flat = {
            "role": self.role, "dataset": self.dataset, "teacher": self.teacher or "",
            "student": self.student, "loss": self.loss, "seed": self.seed,
            "teacher_seed": self.teacher_seed, "val_fraction": self.val_fraction,
            "split_seed": self.split_seed, "amp": self.amp or "fp32",
            "channels_last": self.channels_last, "lr": self.lr,
        }
        for name, weight in self.terms:
            flat[f"weight.{name}"] = weight
        for term, values in self.hparams:
            for key, value in values:
                flat[f"hparam.{term}.{key}"] = value
        for key, value in self.recipe.model_dump(mode="json").items():
            flat[f"recipe.{key}"] = value
        return {k: str(v) for k, v in flat.items()}


@dataclass
class Cohort:
    """Student runs that train together from one data stream and one teacher forward."""

    key: tuple
    runs: list[RunSpec] = field(default_factory=list)

    @property
    def dataset(self) -> str:
        return self.runs[0].dataset

    @property
    def teacher(self) -> Optional[str]:
        return self.runs[0].teacher

    @property
    def seed(self) -> int:
        return self.runs[0].seed

    def describe(self) -> str:
        t = self.teacher or "(no teacher)"
        return f"{self.dataset} {t} seed {self.seed}: {len(self.runs)} run(s)"


@dataclass
class PlanOptions:
    """Command-line choices that change the plan."""

    seeds: Optional[list[int]] = None
    epochs: Optional[int] = None
    batch_size: Optional[int] = None
    only: dict[str, set[str]] = field(default_factory=dict)
    amp: Optional[str] = None
    channels_last: bool = False


def parse_only(text: Optional[str]) -> dict[str, set[str]]:
    """``--only loss=sp,student=resnet8x4`` -> {"loss": {"sp"}, "student": {"resnet8x4"}}.

    Repeating a key (``loss=sp,loss=kd``) allows several values.
    """
    allowed = ("dataset", "teacher", "student", "loss", "seed")
    result: dict[str, set[str]] = {}
    if not text:
        return result
    for part in text.split(","):
        if "=" not in part:
            raise UserError(f"--only filter '{part}' is not KEY=VALUE. Use e.g. "
                            "--only loss=sp,student=resnet8x4 (keys: " + ", ".join(allowed) + ").")
        key, value = (s.strip() for s in part.split("=", 1))
        if key not in allowed:
            raise UserError(f"--only key '{key}' is unknown (in '{text}'). Allowed keys: "
                            + ", ".join(allowed) + ".")
        result.setdefault(key, set()).add(value)
    return result


def _matches(spec: RunSpec, only: dict[str, set[str]]) -> bool:
    values = {"dataset": spec.dataset, "teacher": spec.teacher or "", "student": spec.student,
              "loss": spec.loss, "seed": str(spec.seed)}
    return all(values[key] in wanted for key, wanted in only.items())


def _loss_configs(suite: SuiteConfig) -> list[LossConfig]:
    from losses.composite import expand_loss_label

    configs = []
    for loss in suite.losses:
        if isinstance(loss, str):
            configs.append(LossConfig(label=loss, terms=expand_loss_label(loss)))
        else:
            configs.append(loss)
    return configs


def _resolve_weight(term: str, weight, *, suite: SuiteConfig, dataset: str, teacher: str,
                    student: str, label: str) -> tuple[float, dict[str, Any]]:
    """The number a term's weight stands for, and tuned hyperparameters that come with it."""
    from losses import loss_class

    if weight == "default":
        return float(loss_class(term).default_weight), {}
    if weight == "tuned":
        from benchmark.tuned import lookup_tuned

        return lookup_tuned(suite.tuned_weights, dataset=dataset, teacher=teacher,
                            student=student, label=label, term=term)
    return float(weight), {}


def _freeze_hparams(*layers: dict[str, dict[str, Any]], terms: Iterable[str]) -> tuple:
    merged: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for term, values in layer.items():
            merged.setdefault(term, {}).update(values)
    return tuple((t, tuple(sorted(merged[t].items()))) for t in sorted(merged) if t in terms)


def expand_suite(suite: SuiteConfig, options: PlanOptions | None = None) -> list[RunSpec]:
    """Every student run of the suite (teacher runs are derived with ``teacher_spec``)."""
    options = options or PlanOptions()
    recipe = get_recipe(suite.recipe).scaled_to(options.epochs, options.batch_size)
    runs = []
    for dataset in suite.datasets:
        for pair in suite.pairs:
            same_family = model_family(pair.teacher) == model_family(pair.student)
            seeds = options.seeds or pair.seeds or (
                suite.seeds if same_family or not suite.cross_family_seeds
                else suite.cross_family_seeds)
            for loss in _loss_configs(suite):
                resolved = {term: _resolve_weight(term, weight, suite=suite, dataset=dataset,
                                                  teacher=pair.teacher, student=pair.student,
                                                  label=loss.label)
                            for term, weight in loss.terms.items()}
                terms = tuple(sorted((term, w) for term, (w, _) in resolved.items()))
                tuned = {term: extra for term, (_, extra) in resolved.items() if extra}
                hparams = _freeze_hparams(suite.hparams, tuned, loss.hparams,
                                          terms=[t for t, _ in terms])
                for seed in seeds:
                    spec = RunSpec(suite=suite.name, role="student", dataset=dataset,
                                   teacher=pair.teacher, student=pair.student, loss=loss.label,
                                   terms=terms, hparams=hparams, seed=seed,
                                   teacher_seed=suite.teacher_seed, recipe=recipe,
                                   val_fraction=suite.val_fraction, split_seed=suite.split_seed,
                                   amp=options.amp, channels_last=options.channels_last)
                    if _matches(spec, options.only):
                        runs.append(spec)
    return runs


def group_cohorts(runs: Iterable[RunSpec]) -> list[Cohort]:
    """Group runs by :meth:`RunSpec.cohort_key`, keeping the plan's order."""
    cohorts: dict[tuple, Cohort] = {}
    for spec in runs:
        cohorts.setdefault(spec.cohort_key(), Cohort(key=spec.cohort_key())).runs.append(spec)
    return list(cohorts.values())


def teacher_specs(runs: Iterable[RunSpec]) -> list[RunSpec]:
    """The distinct teacher-training runs that the student runs need."""
    seen: dict[str, RunSpec] = {}
    for spec in runs:
        if spec.teacher is not None:
            teacher = spec.teacher_spec()
            seen.setdefault(teacher.config_hash, teacher)
    return list(seen.values())
