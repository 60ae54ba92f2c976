"""The model registry: register builders by name, then create models with their feature taps.

A builder is ``fn(num_classes, in_chans, **kw) -> nn.Module``, registered with
``@register_model(name=..., aliases=..., taps=...)`` (timm style; bare ``@register_model`` uses
the function's name). :func:`create_model` builds the model and attaches two plain instance
attributes, ``model.kdbench_name`` (canonical name) and ``model.kdbench_taps`` (tap name ->
module spec, see :mod:`models.taps`), plus ``model.kdbench_bn_before_relu`` (pre-activation
tap -> BatchNorm path, for OFD's margins); the state dict and ``forward`` are untouched.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from torch import nn

from benchmark.errors import user_error
from models.taps import resolve_tap_module

ModelBuilder = Callable[..., nn.Module]


@dataclass(frozen=True)
class ModelEntry:
    """One registered architecture: its canonical name, builder, aliases and tap specs."""

    name: str
    builder: ModelBuilder
    aliases: tuple[str, ...] = ()
    taps: Mapping[str, str] = field(default_factory=dict)
    bn_before_relu: Mapping[str, str] = field(default_factory=dict)


_MODELS: dict[str, ModelEntry] = {}
_ALIASES: dict[str, str] = {}


def register_model(fn: ModelBuilder | None = None, *, name: str | None = None,
                   aliases: Iterable[str] = (), taps: Mapping[str, str] | None = None,
                   bn_before_relu: Mapping[str, str] | None = None):
    """Register a builder ``fn(num_classes, in_chans, **kw) -> nn.Module`` under ``name``.

    Usable bare (``@register_model``) or with options. Aliases resolve case-sensitively to
    ``name``. ``taps`` maps tap names to module specs (see :mod:`models.taps`);
    ``bn_before_relu`` maps ``preact_stageK`` taps to the BatchNorm feeding that ReLU.
    """

    def decorate(builder: ModelBuilder) -> ModelBuilder:
        entry = ModelEntry(name=name or builder.__name__, builder=builder,
                           aliases=tuple(aliases), taps=dict(taps or {}),
                           bn_before_relu=dict(bn_before_relu or {}))
        _add_entry(entry)
        return builder

    return decorate(fn) if fn is not None else decorate


def _add_entry(entry: ModelEntry) -> None:
    for label in (entry.name, *entry.aliases):
        owner = _ALIASES.get(label, label if label in _MODELS else None)
        if owner is not None and not _same_builder(_MODELS[owner].builder, entry.builder):
            raise user_error(
                f"Model name '{label}' is already registered (by {_describe(_MODELS[owner])})",
                f"register_model for {entry.builder.__module__}.{entry.builder.__qualname__}",
                "Pick a different name or alias",
            )
    _MODELS[entry.name] = entry
    for alias in entry.aliases:
        _ALIASES[alias] = entry.name


def _same_builder(a: ModelBuilder, b: ModelBuilder) -> bool:
    """True for the same function, or the same function re-registered by a module reload."""
    return a is b or (a.__module__, a.__qualname__) == (b.__module__, b.__qualname__)


def _describe(entry: ModelEntry) -> str:
    return f"{entry.builder.__module__}.{entry.builder.__qualname__}"


def is_model(name: str) -> bool:
    """True if ``name`` is a registered canonical name or alias."""
    return name in _MODELS or name in _ALIASES


def list_models(pattern: str = "*") -> list[str]:
    """Sorted canonical names matching the shell-style ``pattern`` (aliases are not listed)."""
    return sorted(name for name in _MODELS if fnmatch.fnmatchcase(name, pattern))


def canonical_name(name: str) -> str:
    """Resolve an alias to its canonical name; ``UserError`` with close matches if unknown."""
    if name in _MODELS:
        return name
    if name in _ALIASES:
        return _ALIASES[name]
    raise _unknown_model_error(name)


def _unknown_model_error(name: object):
    labels = [*_MODELS, *_ALIASES]
    by_lower = {label.lower(): label for label in labels}
    close = difflib.get_close_matches(str(name).lower(), list(by_lower), n=5, cutoff=0.6)
    hint = f"Did you mean {', '.join(by_lower[c] for c in close)}? " if close else ""
    return user_error(
        f"Unknown model '{name}'",
        "model name",
        f"{hint}`kdbench models` (or models.list_models()) lists all {len(_MODELS)} registered "
        "names and their aliases",
    )


def model_entry(name: str) -> ModelEntry:
    """The registry entry for a canonical name or alias."""
    return _MODELS[canonical_name(name)]


def create_model(name: str, num_classes: int = 100, in_chans: int = 3, **kw) -> nn.Module:
    """Build the registered model ``name`` with its feature taps attached.

    Extra keyword arguments go to the builder; ones it does not accept raise ``UserError``.
    """
    entry = model_entry(name)
    _check_positive_int("num_classes", num_classes, entry.name)
    _check_positive_int("in_chans", in_chans, entry.name)
    _check_builder_arguments(entry, num_classes, in_chans, kw)
    model = entry.builder(num_classes=num_classes, in_chans=in_chans, **kw)
    for spec in [*entry.taps.values(), *entry.bn_before_relu.values()]:
        resolve_tap_module(model, spec)
    model.kdbench_name = entry.name
    model.kdbench_taps = dict(entry.taps)
    model.kdbench_bn_before_relu = dict(entry.bn_before_relu)
    return model


def _check_positive_int(argument: str, value, model_name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise user_error(
            f"{argument} must be a positive integer, got {value!r}",
            f"create_model('{model_name}', {argument}=...)",
            f"Pass the data set's {argument.replace('_', ' ')} as an int",
        )


def _check_builder_arguments(entry: ModelEntry, num_classes: int, in_chans: int, kw: dict):
    try:
        inspect.signature(entry.builder).bind(num_classes=num_classes, in_chans=in_chans, **kw)
    except TypeError as err:
        raise user_error(
            f"Model '{entry.name}' does not accept the options {sorted(kw)}: {err}",
            f"create_model('{entry.name}', ...)",
            "Remove the unsupported keyword arguments",
        ) from None
