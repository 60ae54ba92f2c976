"""Suite files: YAML validated into typed configs.

A suite names data sets, teacher/student pairs, loss configs (weighted terms), seeds and a
recipe. Structural problems are reported by pydantic; names are then checked against the model,
loss, data-set and recipe registries. Either way the user gets one paragraph: the file, the field
path, what was given and what is allowed (:class:`benchmark.errors.UserError`, exit 2).
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml
from pydantic import (BaseModel, ConfigDict, Field, ValidationError, field_validator,
                      model_validator)

from benchmark.errors import UserError

#: the row every loss is tested against unless a suite names its own ``baselines``
DEFAULT_BASELINE = "sp"

WeightValue = Union[float, Literal["default", "tuned"]]


class LossConfig(BaseModel):
    """One leaderboard row: a label and its weighted terms (``ce`` included)."""

    model_config = ConfigDict(extra="forbid")
    label: str
    terms: dict[str, WeightValue]
    hparams: dict[str, dict[str, Any]] = Field(default_factory=dict)
    #: ``random``: the random-teacher control (distil from the teacher's architecture untrained)
    teacher_init: Literal["trained", "random"] = "trained"

    @field_validator("terms")
    @classmethod
    def _weights_not_negative(cls, terms: dict) -> dict:
        for name, weight in terms.items():
            if isinstance(weight, float) and weight < 0:
                raise ValueError(f"weight of term '{name}' is {weight}; weights must be >= 0")
        if not terms:
            raise ValueError("a loss needs at least one term (e.g. ce: 1)")
        return terms


class PairConfig(BaseModel):
    """A teacher -> student pair, optionally with its own seeds and its published per-pair
    settings: ``weights`` (what a term's ``default`` weight is on this pair, e.g. DKD's or
    ReviewKD's beta), ``hparams`` (per-term hyperparameters, between the suite's and the
    loss's own), ``exclude`` (loss labels not planned for this pair, e.g. FSP across widths)."""

    model_config = ConfigDict(extra="forbid")
    teacher: str
    student: str
    seeds: Optional[list[int]] = None
    weights: dict[str, float] = Field(default_factory=dict)
    hparams: dict[str, dict[str, Any]] = Field(default_factory=dict)
    exclude: list[str] = Field(default_factory=list)


class SuiteConfig(BaseModel):
    """A whole suite file."""

    model_config = ConfigDict(extra="forbid")
    name: str
    description: str = ""
    recipe: str
    teacher_recipe: Optional[str] = None  # the teachers' recipe, when not ``recipe``
    datasets: list[str] = Field(min_length=1)
    pairs: list[PairConfig] = Field(min_length=1)
    losses: list[Union[str, LossConfig]] = Field(min_length=1)
    seeds: list[int] = Field(min_length=1)
    cross_family_seeds: Optional[list[int]] = None
    teacher_seed: int = 0
    teacher_seeds: Optional[list[int]] = None  # several teachers: every student seed on each
    val_fraction: float = Field(default=0.0, ge=0.0, lt=1.0)
    split_seed: int = 0
    #: students train on this stratified share of the training split; teachers on all of it
    student_train_fraction: float = Field(default=1.0, gt=0.0, le=1.0)
    hparams: dict[str, dict[str, Any]] = Field(default_factory=dict)
    tuned_weights: Optional[str] = None
    # term -> (low, high): where `kdbench tune` searches that term's weight (log-uniform),
    # instead of the loss class's range (by default [default/10, default*10]).
    weight_ranges: dict[str, tuple[float, float]] = Field(default_factory=dict)
    # the rows each loss is tested against, one leaderboard per baseline: the first in
    # results/<suite>/, each further one in results/<suite>/against-<baseline>/
    baselines: list[str] = Field(default_factory=lambda: [DEFAULT_BASELINE], min_length=1)

    @field_validator("seeds", "cross_family_seeds", "teacher_seeds")
    @classmethod
    def _seed_list(cls, seeds: Optional[list[int]]) -> Optional[list[int]]:
        return validate_seeds(seeds)

    @model_validator(mode="after")
    def _one_teacher_seed_field(self) -> "SuiteConfig":
        if self.teacher_seeds is not None and "teacher_seed" in self.model_fields_set:
            raise ValueError("give either teacher_seed (one teacher) or teacher_seeds (a list), "
                             "not both")
        return self

    @property
    def all_teacher_seeds(self) -> list[int]:
        """The teacher seeds every student seed is trained with (``teacher_seeds`` or
        ``[teacher_seed]``)."""
        return list(self.teacher_seeds or [self.teacher_seed])


def validate_seeds(seeds: Optional[list[int]]) -> Optional[list[int]]:
    """Seeds are distinct non-negative integers; raises ValueError otherwise."""
    if seeds is None:
        return None
    if not seeds:
        raise ValueError("the seed list is empty; give at least one seed, e.g. [0, 1, 2]")
    bad = [s for s in seeds if s < 0]
    if bad:
        raise ValueError(f"seeds must be non-negative integers, got {bad}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {seeds}")
    return seeds


def model_family(name: str) -> str:
    """The architecture family used to tell same-family from cross-family pairs."""
    base = name[3:] if name.startswith("tv_") else name
    match = re.match(r"[a-z]+", base.lower())
    return match.group(0) if match else base


def builtin_suites() -> dict[str, Path]:
    """Built-in suite files shipped in ``benchmark/suites``, by name."""
    folder = resources.files("benchmark") / "suites"
    return {Path(str(p)).stem: Path(str(p)) for p in folder.iterdir() if str(p).endswith(".yaml")}


def resolve_suite_path(name_or_path: str) -> Path:
    """A built-in suite name or a path to a YAML file."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise UserError(f"Suite file '{name_or_path}' does not exist. Pass a built-in suite "
                            f"name ({', '.join(sorted(builtin_suites()))}) or the path of a YAML "
                            "suite file.")
        return path
    suites = builtin_suites()
    if name_or_path not in suites:
        raise UserError(f"Unknown suite '{name_or_path}'. Built-in suites are: "
                        f"{', '.join(sorted(suites))}; or pass the path of a YAML suite file.")
    return suites[name_or_path]


def load_suite(name_or_path: str) -> SuiteConfig:
    """Read, validate and name-check a suite; every problem becomes a :class:`UserError`."""
    path = resolve_suite_path(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise UserError(f"Suite file {path} is not a text file (it is not UTF-8: binary data?). "
                        "Pass a YAML suite file (see docs/suites.md) or a built-in suite name.") \
            from None
    except OSError as err:
        raise UserError(f"Suite file {path} cannot be read ({err.strerror}). Check the path and "
                        "its permissions.") from None
    except yaml.YAMLError as err:
        raise UserError(f"Suite file {path} is not valid YAML: {err}. Fix the syntax at the "
                        "position shown.") from None
    if not isinstance(raw, dict):
        raise UserError(f"Suite file {path} must hold a mapping of fields (name, recipe, "
                        f"datasets, pairs, losses, seeds), but it holds {type(raw).__name__}.")
    raw.setdefault("name", path.stem)
    try:
        suite = SuiteConfig.model_validate(raw)
    except ValidationError as err:
        raise _validation_error(path, raw, err) from None
    check_names(suite, path)
    suite.tuned_weights = beside_suite(path, suite.tuned_weights)
    return suite


def beside_suite(path: Path, name: Optional[str]) -> Optional[str]:
    """A relative ``tuned_weights`` path is read beside the suite file (a built-in suite's
    shipped file is found from any working directory); absolute paths stay as given."""
    if name is None or Path(name).expanduser().is_absolute():
        return name
    return str(path.parent / name)


UNION_TAGS = ("str", "int", "float", "LossConfig", "PairConfig")


def _field_path(loc: tuple) -> str:
    """``('losses', 0, 'LossConfig', 'terms')`` -> ``losses.0.terms`` (union branch tags go)."""
    parts = [str(p) for p in loc if not (isinstance(p, str) and (
        p in UNION_TAGS or p.startswith(("literal[", "function-"))))]
    return ".".join(parts) or "(top level)"


def _validation_error(path: Path, raw: dict, err: ValidationError) -> UserError:
    # With a union (a loss is a label or a mapping) the deepest error is the informative one.
    first = max(err.errors(), key=lambda e: len(e["loc"]))
    field = _field_path(first["loc"])
    given = first.get("input", "(missing)")
    if first["type"] == "missing":
        given = "(missing)"
    allowed = _allowed_for(first)
    more = f" ({err.error_count() - 1} more problem(s) after this one.)" \
        if err.error_count() > 1 else ""
    return UserError(f"Suite file {path}: field '{field}' is invalid: {first['msg']}. Given: "
                     f"{given!r}. Allowed: {allowed}. Fix that field and run again.{more}")


def _allowed_for(error: dict) -> str:
    kind = error["type"]
    if error["loc"] and error["loc"][-1] == "teacher_init":
        return "'trained' (the stored teacher) or 'random' (the random-teacher control)"
    if kind == "extra_forbidden":
        return ("only the fields " + ", ".join(SuiteConfig.model_fields) + " at the top level; "
                "teacher, student, seeds, weights, hparams, exclude in a pair; label, terms, hparams, teacher_init in a loss")
    if kind.startswith("literal") or "union" in kind:
        return "a number >= 0, 'default' or 'tuned'"
    if "int" in kind:
        return "an integer"
    if "float" in kind:
        return "a number"
    if kind in ("list_type", "too_short"):
        return "a non-empty list"
    return "see docs/suites.md"


def as_loss_config(loss: Union[str, LossConfig]) -> LossConfig:
    """A suite's loss entry as a :class:`LossConfig`: a label (``sp+kd``) is parsed into its
    weighted terms here, once (PROTOCOL §1, :func:`losses.composite.expand_loss_label`)."""
    from losses.composite import expand_loss_label

    return loss if isinstance(loss, LossConfig) else LossConfig(label=loss,
                                                                terms=expand_loss_label(loss))


def check_names(suite: SuiteConfig, path: Path) -> None:
    """Check models, losses, data sets and the recipe exist in their registries; then resolve
    every model name to its canonical name and every loss label to its terms, in place, so
    nothing downstream sees an alias or an unparsed label."""
    import models
    from benchmark.data import list_datasets
    from benchmark.recipes import RECIPES
    from losses import is_loss, list_losses

    def fail(field: str, given: Any, allowed: str) -> UserError:
        return UserError(f"Suite file {path}: field '{field}' is invalid. Given: {given!r}. "
                         f"Allowed: {allowed}. Fix that field and run again.")

    for field, recipe in (("recipe", suite.recipe), ("teacher_recipe", suite.teacher_recipe)):
        if recipe is not None and recipe not in RECIPES:
            raise fail(field, recipe, ", ".join(sorted(RECIPES)))
    for i, dataset in enumerate(suite.datasets):
        if dataset not in list_datasets():
            raise fail(f"datasets.{i}", dataset, ", ".join(list_datasets()))
    for i, pair in enumerate(suite.pairs):
        for side in ("teacher", "student"):
            arch = getattr(pair, side)
            if not models.is_model(arch):
                raise fail(f"pairs.{i}.{side}", arch, "a model from `kdbench models` "
                           f"({', '.join(models.list_models()[:8])}, ...)")
        try:
            validate_seeds(pair.seeds)
        except ValueError as err:
            raise fail(f"pairs.{i}.seeds", pair.seeds, str(err)) from None
        for field in ("weights", "hparams"):
            for term in getattr(pair, field):
                if not is_loss(term):
                    raise fail(f"pairs.{i}.{field}.{term}", term, "a registered loss term")
    known = set(list_losses())
    parsed = []
    for i, loss in enumerate(suite.losses):
        try:
            config = as_loss_config(loss)
        except Exception as err:  # the label parser explains what it could not read
            raise fail(f"losses.{i}", loss, f"a registered loss or 'X+kd' ({err})") from None
        for term in config.terms:
            if term not in known and not is_loss(term):  # or host@modifier
                raise fail(f"losses.{i}", loss if isinstance(loss, str) else term,
                           ", ".join(sorted(known)) + " (or a plugin's loss)")
        parsed.append(config)
    suite.losses = parsed
    for pair in suite.pairs:
        pair.teacher = models.canonical_name(pair.teacher)
        pair.student = models.canonical_name(pair.student)
    for term in suite.hparams:
        if term not in known and not is_loss(term):
            raise fail(f"hparams.{term}", term, ", ".join(sorted(known)))
    for term, (low, high) in suite.weight_ranges.items():
        if term not in known and not is_loss(term):
            raise fail(f"weight_ranges.{term}", term, ", ".join(sorted(known)))
        if not 0 < low < high:
            raise fail(f"weight_ranges.{term}", [low, high], "[low, high] with 0 < low < high")
    rows = ["student", *(loss.label for loss in parsed)]
    given = suite.baselines if "baselines" in suite.model_fields_set else []  # the default
    for i, baseline in enumerate(given):  # may be absent: its tables then say so
        if baseline not in rows or suite.baselines.index(baseline) != i:
            raise fail(f"baselines.{i}", baseline, "distinct row labels of this suite: "
                       + ", ".join(dict.fromkeys(rows)))
