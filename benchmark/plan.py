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
from typing import Any, Iterable, Literal, Optional

from pydantic import BaseModel, ConfigDict, field_validator

from benchmark.config import LossConfig, SuiteConfig, model_family
from benchmark.errors import UserError
from benchmark.recipes import Recipe, get_recipe


#: Fields that do not change a run's numbers: left out of its identity (config hash).
NON_IDENTITY_FIELDS = frozenset({"suite"})
#: Fields in which the members of one cohort differ; every other field is shared by a cohort.
MEMBER_FIELDS = frozenset({"student", "loss", "terms", "hparams"})
#: Fields that are seeds: a leaderboard cell averages over them (see :meth:`RunSpec.setting_hash`).
SEED_FIELDS = frozenset({"seed", "teacher_seed"})
#: Fields a teacher-training run sets itself; the rest it inherits from its student's spec.
TEACHER_OWN_FIELDS = frozenset({"role", "teacher", "student", "loss", "terms", "hparams", "seed",
                                "teacher_seed", "train_fraction", "teacher_recipe"})
#: Settings added after runs were recorded: left out of a run's identity while they hold their
#: default, so every run recorded before them keeps its config hash.
DEFAULT_OMITTED_FIELDS = frozenset({"train_fraction", "teacher_init", "teacher_recipe", "compile"})



def _digest(payload: dict) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def canonical_model_name(name: Optional[str]) -> Optional[str]:
    """A model name or alias as its registry's canonical name (unknown names pass unchanged:
    the suite and CLI checks report them with the list of known models)."""
    if name is None:
        return None
    import models

    return models.canonical_name(name) if models.is_model(name) else name



def mlflow_name(term: str) -> str:
    """A term name as MLflow keys may hold it: ``host@modifier`` terms (``kd@ls``) are written
    ``kd:ls`` in param and metric keys (MLflow forbids '@'); tags keep the label as is."""
    return term.replace("@", ":")

class RunSpec(BaseModel):
    """One training run, fully resolved (weights are numbers, the recipe is explicit).

    Model names are canonicalised on construction, so an alias (``MobileNetV2``) and its
    canonical name (``mobilenetv2``) give one spec, one hash, one learning rate and one store path.
    """

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
    teacher_recipe: Optional[Recipe] = None  # the teacher's, when not the student's ``recipe``
    val_fraction: float = 0.0
    split_seed: int = 0
    train_fraction: float = 1.0  # share of the training split a student trains on (teachers: 1)
    # the teacher distilled from: the stored, trained one, or (the random-teacher control) its
    # architecture untrained, initialised with torch.manual_seed(teacher_seed)
    teacher_init: Literal["trained", "random"] = "trained"
    amp: Optional[str] = None
    channels_last: bool = False
    compile: bool = False  # torch.compile of student and teacher (same math, not bitwise)

    @field_validator("teacher", "student")
    @classmethod
    def _canonical_model(cls, name: Optional[str]) -> Optional[str]:
        return canonical_model_name(name)

    @classmethod
    def for_teacher(cls, arch: str, seed: int = 0, **shared: Any) -> "RunSpec":
        """The one constructor of teacher-training specs: CE only, on ``arch``, ``seed``;
        ``shared`` holds every other field (suite, dataset, recipe, split, speed options)."""
        return cls(role="teacher", teacher=None, student=arch, loss="teacher",
                   terms=(("ce", 1.0),), hparams=(), seed=seed, teacher_seed=seed, **shared)

    def _dump_without(self, excluded: frozenset) -> dict[str, Any]:
        """The fields as JSON, less ``excluded`` and the :data:`DEFAULT_OMITTED_FIELDS` that
        hold their default."""
        fields = type(self).model_fields
        at_default = {name for name in DEFAULT_OMITTED_FIELDS
                      if getattr(self, name) == fields[name].default}
        return self.model_dump(mode="json", exclude=set(excluded | at_default))

    def identity(self) -> dict[str, Any]:
        """The resolved configuration that decides the run's numbers (JSON-ready)."""
        return self._dump_without(NON_IDENTITY_FIELDS)

    @property
    def config_hash(self) -> str:
        """The run's identity: a digest of :meth:`identity` (every field but the suite name)."""
        return _digest(self.identity())

    @property
    def setting_hash(self) -> str:
        """The run's configuration without its seeds: runs of one leaderboard cell share it."""
        return _digest(self._dump_without(NON_IDENTITY_FIELDS | SEED_FIELDS))

    def to_json(self) -> str:
        """The full spec as compact JSON (MLflow tag ``kdbench.spec``; :meth:`from_json`)."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "RunSpec":
        return cls.model_validate_json(text)

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
        """The spec of the CE-only run that trains this run's teacher: every field that is not
        the student's own is inherited, so a new setting reaches the teacher by itself."""
        if self.teacher is None:
            raise ValueError("a teacher run has no teacher")
        shared = {name: getattr(self, name) for name in type(self).model_fields
                  if name not in TEACHER_OWN_FIELDS}
        shared["recipe"] = self.teacher_recipe or self.recipe
        return type(self).for_teacher(self.teacher, self.teacher_seed, **shared)

    def cohort_key(self) -> tuple:
        """Runs with equal keys share the data stream and the teacher's forward: every field
        except the members' own (:data:`MEMBER_FIELDS`) and the suite name."""
        shared = self.model_dump(mode="json", exclude=set(MEMBER_FIELDS | NON_IDENTITY_FIELDS))
        return tuple(sorted((name, json.dumps(value, sort_keys=True))
                            for name, value in shared.items()))

    def tags(self) -> dict[str, str]:
        """The MLflow tags the spec alone decides (names from :mod:`benchmark.records`)."""
        from benchmark.records import spec_tags

        return spec_tags(self)

    def params(self) -> dict[str, str]:
        """The resolved config, flattened for MLflow params (derived from the fields)."""
        flat: dict[str, Any] = {"lr": self.lr}
        for name, value in self.model_dump(mode="json").items():
            if name == "terms":
                flat.update({f"weight.{mlflow_name(term)}": weight for term, weight in value})
            elif name == "hparams":
                flat.update({f"hparam.{mlflow_name(term)}.{key}": v for term, values in value
                             for key, v in values})
            elif isinstance(value, dict):
                flat.update({f"{name}.{key}": v for key, v in value.items()})
            elif name not in NON_IDENTITY_FIELDS:
                flat[name] = "" if value is None else value
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
    compile: bool = False


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
        if key in ("teacher", "student"):
            value = canonical_model_name(value)
        result.setdefault(key, set()).add(value)
    return result


def _only_values(spec: RunSpec) -> dict[str, str]:
    return {"dataset": spec.dataset, "teacher": spec.teacher or "", "student": spec.student,
            "loss": spec.loss, "seed": str(spec.seed)}


def _matches(spec: RunSpec, only: dict[str, set[str]]) -> bool:
    values = _only_values(spec)
    return all(values[key] in wanted for key, wanted in only.items())


def _check_only(only: dict[str, set[str]], every: list[RunSpec], suite: str) -> None:
    """A ``--only`` value the suite never has is a typo, not an empty plan."""
    for key, wanted in only.items():
        present = {_only_values(spec)[key] for spec in every}
        missing = sorted(wanted - present)
        if missing:
            raise UserError(f"--only {key}={','.join(missing)} matches no run of suite '{suite}' "
                            f"(its {key} values: {', '.join(sorted(present))}). Pick one of "
                            "those, or drop the filter.")


def _loss_configs(suite: SuiteConfig) -> list[LossConfig]:
    from benchmark.config import as_loss_config

    return [as_loss_config(loss) for loss in suite.losses]


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


def _pair_weight(pair, term: str, weight):
    """A ``default`` weight is the pair's published one when the pair names it."""
    return pair.weights.get(term, weight) if weight == "default" else weight


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
    teacher_recipe = (get_recipe(suite.teacher_recipe).scaled_to(options.epochs,
                                                                 options.batch_size)
                      if suite.teacher_recipe else None)
    runs = []
    for dataset in suite.datasets:
        for pair in suite.pairs:
            same_family = model_family(pair.teacher) == model_family(pair.student)
            seeds = options.seeds or pair.seeds or (
                suite.seeds if same_family or not suite.cross_family_seeds
                else suite.cross_family_seeds)
            for loss in _loss_configs(suite):
                if loss.label in pair.exclude:
                    continue
                resolved = {term: _resolve_weight(term, _pair_weight(pair, term, weight),
                                                  suite=suite, dataset=dataset,
                                                  teacher=pair.teacher, student=pair.student,
                                                  label=loss.label)
                            for term, weight in loss.terms.items()}
                terms = tuple(sorted((term, w) for term, (w, _) in resolved.items()))
                tuned = {term: extra for term, (_, extra) in resolved.items() if extra}
                hparams = _freeze_hparams(suite.hparams, pair.hparams, tuned, loss.hparams,
                                          terms=[t for t, _ in terms])
                for teacher_seed, seed in _seed_grid(suite, seeds):
                    spec = RunSpec(suite=suite.name, role="student", dataset=dataset,
                                   teacher=pair.teacher, student=pair.student, loss=loss.label,
                                   terms=terms, hparams=hparams, seed=seed,
                                   teacher_seed=teacher_seed, recipe=recipe,
                                   teacher_recipe=teacher_recipe,
                                   val_fraction=suite.val_fraction, split_seed=suite.split_seed,
                                   train_fraction=suite.student_train_fraction,
                                   teacher_init=loss.teacher_init, amp=options.amp,
                                   channels_last=options.channels_last,
                                   compile=options.compile)
                    runs.append(spec)
    _check_only(options.only, runs, suite.name)
    return [spec for spec in runs if _matches(spec, options.only)]


def _seed_grid(suite: SuiteConfig, seeds: list[int]) -> list[tuple[int, int]]:
    """(teacher seed, student seed) of every run of one cell: each student seed with each of
    the suite's teachers (``teacher_seeds``), so runs pair by (teacher seed, seed)."""
    return [(teacher_seed, seed) for teacher_seed in suite.all_teacher_seeds for seed in seeds]


def group_cohorts(runs: Iterable[RunSpec]) -> list[Cohort]:
    """Group runs by :meth:`RunSpec.cohort_key`, keeping the plan's order."""
    cohorts: dict[tuple, Cohort] = {}
    for spec in runs:
        cohorts.setdefault(spec.cohort_key(), Cohort(key=spec.cohort_key())).runs.append(spec)
    return list(cohorts.values())


def teacher_specs(runs: Iterable[RunSpec]) -> list[RunSpec]:
    """The distinct teacher-training runs that the student runs need (an untrained teacher,
    ``teacher_init: random``, needs none)."""
    seen: dict[str, RunSpec] = {}
    for spec in runs:
        if spec.teacher is not None and spec.teacher_init == "trained":
            teacher = spec.teacher_spec()
            seen.setdefault(teacher.config_hash, teacher)
    return list(seen.values())
