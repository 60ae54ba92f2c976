"""The loss registry: the :class:`DistillLoss` base class, ``@register_loss`` and ``create_loss``.

A loss is one class in one file. It declares, as class attributes, what the suite needs to know
before building it (see docs/losses.md):

- ``name``: registry key (set by ``@register_loss``);
- ``default_weight``: the published beta;
- ``hparams``: ``{name: HParam(default, low, high, log)}``, the searchable hyperparameters;
- ``options``: ``{name: default}``, non-searchable configuration (layer choices, seeds);
- ``weight_range``: ``(low, high)`` for weight search, or None for [default/10, default*10];
- ``needs_labels`` / ``needs_indices``: whether forward reads labels / dataset sample indices;
- ``needs_context``: whether the constructor needs a :class:`LossContext` (dataset facts);
- ``needs_teacher``: whether it needs ``context.teacher`` (the frozen teacher model, whose
  classifier or BatchNorm statistics it copies at construction: SRRL, SimKD, OFD).

Pre-training stages (AB, FT, FSP; PROTOCOL §3). A loss whose ``pretrain_epochs()`` is > 0 is
trained first for that many epochs on its own objective (``pretrain_loss``) with its own SGD
over ``pretrain_parameters(student)`` (benchmark/stages.py runs it, checkpointed and logged);
a ``stage_only`` loss then takes no part in the main training (AB and FSP: CE only after it).

A loss that ``owns_head`` (SimKD) classifies the student at test time: the engine evaluates
``head_logits(student_feats)`` instead of the student's own classifier (train and test
accuracy), and saves the loss's head with the student's weights under ``HEAD_PREFIX``; the
transfer probe keeps using the student's own embedding.

Schedules. Before each training epoch the engine calls ``loss.set_epoch(e)`` with the 0-based
index e of the epoch about to run; ``self.epoch`` holds it (0 until told) and
:meth:`DistillLoss.warmup_factor` gives the linear warm-up min((e + 1) / n, 1) of DKD and
ReviewKD (mdistiller's 1-based epoch / n).

A constructed loss exposes ``student_tap_names`` / ``teacher_tap_names`` (the taps it reads),
``trainable_parameters()`` and a ``state_dict()`` holding everything a checkpoint must carry.
Its forward ``loss(student_feats, teacher_feats, labels=None, indices=None)`` returns the
*unweighted* scalar.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor, nn

from benchmark.errors import UserError, user_error

LOGITS = "logits"
EMBEDDING = "embedding"
LAST = "last"
STAGE = "stage"
PREACT_STAGE = "preact_stage"
BUILT_IN = "kdbench built-in"
#: Saved student weights hold a head-owning loss's head under this key prefix (the probe and
#: ``load_state_dict`` of the bare architecture skip it).
HEAD_PREFIX = "head."
MODIFIER_SEPARATOR = "@"


@dataclass(frozen=True)
class HParam:
    """A searchable hyperparameter: its default and search range.

    An ``int`` default makes it an integer hyperparameter (Optuna ``suggest_int``); ``log``
    selects a log-uniform search.
    """

    default: float | int
    low: float | int
    high: float | int
    log: bool = True

    @property
    def is_integer(self) -> bool:
        return isinstance(self.default, int) and not isinstance(self.default, bool)

    def check(self, owner: str, name: str) -> None:
        """Raise ``UserError`` unless low <= default <= high (and low > 0 for log ranges)."""
        if not self.low <= self.default <= self.high or (self.log and self.low <= 0):
            raise user_error(
                f"Hyperparameter '{name}' of loss '{owner}' declares default {self.default} "
                f"and range [{self.low}, {self.high}] (log={self.log})",
                f"{owner}.hparams['{name}']",
                "Declare low <= default <= high, with low > 0 when log=True",
            )


@dataclass(frozen=True)
class LossContext:
    """Facts about the training split that some losses (CRD) need at construction.

    ``train_labels`` is an int64 tensor of the training split's labels, indexed by the sample
    indices the loader yields. ``teacher`` is the frozen teacher model (None for teacher
    training); a loss may copy parts of it (classifier weights, BatchNorm statistics) into its
    own buffers at construction, never hold it as a submodule.
    """

    num_samples: int
    num_classes: int
    train_labels: Tensor
    teacher: Any = None


def tap_shape(info: Any) -> tuple[int, ...]:
    """A tap's shape without the batch dim, from a ``TapInfo`` or a plain sequence."""
    return tuple(int(v) for v in getattr(info, "shape", info))


def stage_tap_names(taps: Mapping[str, Any], prefix: str = STAGE) -> list[str]:
    """The ``<prefix>1..<prefix>K`` names present in ``taps`` (``stage1..stageK`` by default,
    ``preact_stage1..K`` for pre-activation maps), in stage order."""
    pattern = re.compile(rf"^{re.escape(prefix)}(\d+)$")
    numbered = [(int(m.group(1)), name) for name in taps if (m := pattern.match(name))]
    return [name for _, name in sorted(numbered)]


class DistillLoss(nn.Module):
    """Base class of every registered loss.

    Subclasses call ``super().__init__(student_taps, teacher_taps, context, **config)`` first,
    then read resolved settings from ``self.config`` and declare the taps they read with
    :meth:`use_student_tap` / :meth:`use_teacher_tap` (which check that the tap exists).
    """

    name: ClassVar[str] = ""
    default_weight: ClassVar[float] = 1.0
    hparams: ClassVar[dict[str, HParam]] = {}
    options: ClassVar[dict[str, Any]] = {}
    weight_range: ClassVar[tuple[float, float] | None] = None
    needs_labels: ClassVar[bool] = False
    needs_indices: ClassVar[bool] = False
    needs_context: ClassVar[bool] = False
    needs_teacher: ClassVar[bool] = False
    #: a loss on logits that modifiers (``@ls``, ``@ctkd``) may wrap; it reads the ``logits``
    #: tap of both networks (the base class records them)
    logit_host: ClassVar[bool] = False
    #: trains only in its pre-training stage, not in the main training
    stage_only: ClassVar[bool] = False
    #: the loss classifies the student at test time (``head_logits``; SimKD)
    owns_head: ClassVar[bool] = False
    #: the CE weight of this method's own label (None: PROTOCOL's 1; SimKD: 0)
    ce_weight: ClassVar[float | None] = None

    def __init__(self, student_taps: Mapping[str, Any], teacher_taps: Mapping[str, Any],
                 context: LossContext | None = None, **config: Any):
        super().__init__()
        self.student_taps = {name: tap_shape(info) for name, info in student_taps.items()}
        self.teacher_taps = {name: tap_shape(info) for name, info in teacher_taps.items()}
        self.config = resolve_config(type(self), config)
        if self.needs_context and context is None:
            raise user_error(
                f"Loss {self.describe()} needs a LossContext (training-set size and labels)",
                f"create_loss('{self.name}', ...)",
                "Pass context=LossContext(num_samples, num_classes, train_labels)",
            )
        if self.needs_teacher and getattr(context, "teacher", None) is None:
            raise user_error(
                f"Loss {self.describe()} reads parts of the teacher model (its classifier or "
                "BatchNorm statistics), but no teacher was given", f"create_loss('{self.name}')",
                "Pass context=LossContext(..., teacher=teacher_model); the engine does this for "
                "every distillation run")
        self.context = context
        self.student_tap_names: list[str] = []
        self.teacher_tap_names: list[str] = []
        self.epoch = 0
        self.temperature_override = None  # a modifier's temperature (CTKD), called per forward
        if self.logit_host:
            self.use_student_tap(LOGITS)
            self.use_teacher_tap(LOGITS)

    @classmethod
    def describe(cls) -> str:
        """``'name'``, plus the plugin it came from when it is not built in."""
        source = _SOURCES.get(cls.name, BUILT_IN)
        return f"'{cls.name}'" if source == BUILT_IN else f"'{cls.name}' (from {source})"

    @classmethod
    def search_weight_range(cls) -> tuple[float, float]:
        """``weight_range`` or the default log-uniform [default/10, default*10]."""
        if cls.weight_range is not None:
            return cls.weight_range
        return cls.default_weight / 10.0, cls.default_weight * 10.0

    def use_student_tap(self, tap: str) -> tuple[int, ...]:
        """Record that this loss reads ``tap`` of the student; return its shape."""
        return self._use_tap("student", tap, self.student_taps, self.student_tap_names)

    def use_teacher_tap(self, tap: str) -> tuple[int, ...]:
        """Record that this loss reads ``tap`` of the teacher; return its shape."""
        return self._use_tap("teacher", tap, self.teacher_taps, self.teacher_tap_names)

    def _use_tap(self, side: str, tap: str, taps: dict, used: list[str]) -> tuple[int, ...]:
        if tap not in taps and tap != LOGITS:
            raise user_error(
                f"Loss {self.describe()} reads tap '{tap}' of the {side}, which the "
                f"{side} model does not have (its taps: {', '.join(sorted(taps)) or 'none'})",
                f"{side} taps of loss '{self.name}'",
                "Pick a tap the model offers (see models.tap_info) or another model",
            )
        if tap not in used:
            used.append(tap)
        return taps.get(tap, ())

    def set_epoch(self, epoch: int) -> None:
        """Told by the engine before each training epoch (0-based index of that epoch)."""
        self.epoch = int(epoch)

    def head_logits(self, student_feats: Mapping[str, Tensor]) -> Tensor:
        """The logits this loss evaluates the student with (``owns_head`` losses only)."""
        raise NotImplementedError(f"loss '{self.name}' does not own the student's head")

    # ----- pre-training stage (see the module docstring) -----
    def pretrain_epochs(self) -> int:
        """Epochs of this loss's pre-training stage: the ``pretrain_epochs`` option, else 0."""
        return int(self.config.get("pretrain_epochs", 0) or 0)

    def pretrain_parameters(self, student: nn.Module) -> list[nn.Parameter]:
        """What the stage's optimizer trains (default: this loss's trainable parts)."""
        return self.trainable_parameters()

    def pretrain_lr(self, lr: float, student_name: str) -> float:
        """The stage's learning rate given the run's (default: the same)."""
        return lr

    def begin_pretrain(self, student: nn.Module) -> None:
        """Train/eval modes for a stage epoch (default: student and loss in train mode)."""
        student.train()
        self.train()

    def end_pretrain(self) -> None:
        """Called once the stage is complete (e.g. freeze what it trained)."""

    def pretrain_loss(self, student_feats: Mapping[str, Tensor], teacher_feats: Mapping[str, Tensor],
                      labels: Tensor | None = None, indices: Tensor | None = None) -> Tensor:
        """The stage's objective (default: the loss itself, unweighted)."""
        return self(student_feats, teacher_feats, labels=labels, indices=indices)

    def temperature(self):
        """The temperature to use now: ``config['T']``, or a modifier's (a tensor) when set."""
        if self.temperature_override is not None:
            return self.temperature_override()
        return float(self.config["T"])

    def warmup_factor(self, epochs: int) -> float:
        """Linear warm-up min((epoch + 1) / epochs, 1): 1/epochs in the first epoch (the
        mdistiller trainer's 1-based epoch / epochs); 1 when ``epochs`` <= 0."""
        return 1.0 if epochs <= 0 else min((self.epoch + 1) / epochs, 1.0)

    def paired_stage_taps(self, student_prefix: str = STAGE, teacher_prefix: str | None = None,
                          align: str = "first") -> list[tuple[str, str]]:
        """zip(student stages, teacher stages), truncated to the shorter (published feat[1:-1]);
        ``align="last"`` keeps the deepest stages instead (mdistiller's ``_align_list``).

        The prefixes pick ``stageK`` or ``preact_stageK`` taps per side. Records every paired
        tap as used; raises ``UserError`` when a side has no such taps.
        """
        teacher_prefix = teacher_prefix or student_prefix
        student = stage_tap_names(self.student_taps, student_prefix)
        teacher = stage_tap_names(self.teacher_taps, teacher_prefix)
        if align == "last":
            keep = min(len(student), len(teacher))
            student, teacher = student[len(student) - keep:], teacher[len(teacher) - keep:]
        pairs = list(zip(student, teacher))
        if not pairs:
            self.use_student_tap(f"{student_prefix}1")
            self.use_teacher_tap(f"{teacher_prefix}1")
        for student_tap, teacher_tap in pairs:
            self.use_student_tap(student_tap)
            self.use_teacher_tap(teacher_tap)
        return pairs

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters the optimizer must train with the student (empty when none)."""
        return [p for p in self.parameters() if p.requires_grad]

    def require(self, value: Tensor | None, what: str) -> Tensor:
        """Return ``value`` or raise if the engine did not pass it."""
        if value is None:
            raise ValueError(f"Loss '{self.name}' needs {what} in forward(...) "
                             f"(needs_labels={self.needs_labels}, needs_indices={self.needs_indices})")
        return value

    def forward(self, student_feats: Mapping[str, Tensor], teacher_feats: Mapping[str, Tensor],
                labels: Tensor | None = None, indices: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.config.items())


_REGISTRY: dict[str, type[DistillLoss]] = {}
_SOURCES: dict[str, str] = {}
_CURRENT_SOURCE: ContextVar[tuple[str, list[str]] | None] = ContextVar(
    "kdbench_loss_source", default=None)


@contextmanager
def registering_from(source: str) -> Iterator[list[str]]:
    """Attribute every registration inside the block to ``source`` (a plugin's label).

    Yields the list of names registered inside the block (filled as they register).
    """
    names: list[str] = []
    token = _CURRENT_SOURCE.set((source, names))
    try:
        yield names
    finally:
        _CURRENT_SOURCE.reset(token)


def _default_source(cls: type) -> str:
    module = cls.__module__
    return BUILT_IN if module.split(".")[0] == "losses" else f"module {module}"


def register_loss(name: str):
    """Class decorator: register a :class:`DistillLoss` subclass under ``name``.

    A name that is taken raises ``UserError`` naming both owners. Re-registering the same class
    (same module and qualified name, e.g. a module loaded twice) replaces the entry.
    """

    def decorate(cls: type[DistillLoss]) -> type[DistillLoss]:
        add_loss_class(cls, name)
        return cls

    return decorate


def add_loss_class(cls: type, name: str | None = None) -> None:
    """Register ``cls`` (see :func:`register_loss`); ``name`` defaults to ``cls.name``."""
    current = _CURRENT_SOURCE.get()
    source = current[0] if current else _default_source(cls)
    key = name or getattr(cls, "name", "")
    _check_declarations(cls, key, source)
    existing = _REGISTRY.get(key)
    if existing is not None and not _same_class(existing, cls):
        raise user_error(
            f"Loss name '{key}' is already registered by {_SOURCES[key]}; {source} tried to "
            f"register {cls.__module__}.{cls.__qualname__} under the same name",
            source,
            f"Rename the loss (e.g. @register_loss('{key}_v2')); taken names: "
            f"{', '.join(sorted(_REGISTRY))}",
        )
    cls.name = key
    _REGISTRY[key] = cls
    _SOURCES[key] = source
    if current:
        current[1].append(key)


def _same_class(a: type, b: type) -> bool:
    return a is b or (a.__module__, a.__qualname__) == (b.__module__, b.__qualname__)


def _check_declarations(cls: type, key: str, source: str) -> None:
    if not (isinstance(cls, type) and issubclass(cls, DistillLoss)):
        raise user_error(f"{cls!r} is not a DistillLoss subclass", source,
                         "Subclass losses.DistillLoss and decorate it with @register_loss")
    if not key or not isinstance(key, str):
        raise user_error(f"Loss class {cls.__qualname__} has no name", source,
                         "Use @register_loss('name') or set the class attribute `name`")
    if not cls.default_weight > 0:
        raise user_error(f"Loss '{key}' declares default_weight {cls.default_weight}", source,
                         "Declare a positive default_weight")
    for hp_name, hp in cls.hparams.items():
        if not isinstance(hp, HParam):
            raise user_error(f"Loss '{key}' declares hparams['{hp_name}'] = {hp!r}", source,
                             "Declare every hyperparameter as HParam(default, low, high, log)")
        hp.check(key, hp_name)
    overlap = set(cls.hparams) & set(cls.options)
    if overlap:
        raise user_error(f"Loss '{key}' declares {sorted(overlap)} as both hparams and options",
                         source, "Keep each setting in one of the two")


def resolve_config(cls: type[DistillLoss], config: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults of ``cls.hparams`` and ``cls.options`` overridden by ``config``.

    Unknown names raise ``UserError``; integer hyperparameters must get integers and float
    ones numbers.
    """
    known = {**{k: hp.default for k, hp in cls.hparams.items()}, **cls.options}
    unknown = [key for key in config if key not in known]
    if unknown:
        raise user_error(
            f"Loss '{cls.name}' has no hyperparameter {', '.join(repr(k) for k in unknown)}",
            f"settings of loss '{cls.name}'",
            f"Known: {', '.join(sorted(known)) or 'none (this loss takes no settings)'}",
        )
    resolved = dict(known)
    for key, value in config.items():
        resolved[key] = _checked_value(cls, key, value) if key in cls.hparams else value
    return resolved


def _checked_value(cls: type[DistillLoss], key: str, value: Any) -> float | int:
    hp = cls.hparams[key]
    integral = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            hp.is_integer and not integral):
        kind = "an integer" if hp.is_integer else "a number"
        raise user_error(f"Hyperparameter '{key}' of loss '{cls.name}' must be {kind}, got "
                         f"{value!r}", f"settings of loss '{cls.name}'",
                         f"Use e.g. {key}={hp.default}")
    return int(value) if hp.is_integer else float(value)


def loss_class(name: str) -> type[DistillLoss]:
    """The class registered under ``name``; unknown names raise ``UserError`` with close matches.

    ``host@modifier`` names (``kd@ls``) give the composed class of :mod:`losses.modifiers`.
    """
    if MODIFIER_SEPARATOR in str(name):
        from losses.modifiers import modified_loss_class, split_label

        return modified_loss_class(name, loss_class(split_label(name)[0]))
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=3)
        hint = f"Did you mean {', '.join(close)}? " if close else ""
        raise user_error(
            f"Unknown loss '{name}'", "loss name",
            f"{hint}Registered losses: {', '.join(sorted(_REGISTRY))}; third-party losses load "
            "through the kdbench.losses entry points or --plugin path/to/file.py",
        ) from None


def is_loss(name: str) -> bool:
    """True for a registered name or a valid ``host@modifier`` composition."""
    if MODIFIER_SEPARATOR not in str(name):
        return name in _REGISTRY
    try:
        loss_class(name)
    except UserError:
        return False
    return True


def list_losses() -> list[str]:
    """Sorted names of every registered loss."""
    return sorted(_REGISTRY)


def registry_source(name: str) -> str:
    """Where the loss ``name`` was registered from ('kdbench built-in' or a plugin label)."""
    cls = loss_class(name)
    return _SOURCES.get(cls.name, _SOURCES.get(getattr(cls, "host_class", cls).name, BUILT_IN))


def create_loss(name: str, student_taps: Mapping[str, Any], teacher_taps: Mapping[str, Any],
                context: LossContext | None = None, **hparams: Any) -> DistillLoss:
    """Build the loss ``name`` for the given tap shapes (``{tap: shape}`` or ``tap_info`` output).

    Errors from a plugin's constructor that are not already ``UserError`` are reported as one,
    naming the plugin.
    """
    cls = loss_class(name)
    source = registry_source(name)
    try:
        return cls(student_taps, teacher_taps, context, **hparams)
    except UserError:
        raise
    except Exception as err:
        if source == BUILT_IN:
            raise
        raise user_error(
            f"Loss '{name}' from {source} failed to build: {type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}".rstrip(": "),
            source, "Fix the plugin's __init__ or the settings passed to it",
        ) from err


def unregister_loss(name: str) -> None:
    """Remove ``name`` from the registry (for tests and plugin reloading)."""
    _REGISTRY.pop(name, None)
    _SOURCES.pop(name, None)
