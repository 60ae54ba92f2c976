"""Logit modifiers: a second axis of losses, written ``host@modifier`` (``kd@ls``, ``dkd@ls``,
``kd@ctkd``, ``kd@ctkd@ls``).

A modifier changes what a logit loss (its *host*) sees, not the loss itself:

- ``ls``, logit standardisation (Sun et al., CVPR 2024; sunshangquan/logit-standardization-KD
  @ f6e5aa5): both logit sets become :func:`losses.functional.standardize_logits` before the
  host's softmax (CE keeps the raw logits). With LS the official CLI ``--base-temp 2
  --kd-weight 9`` sets KD's T 2 and weight 9 (CE 0.1), and DKD's T 2 with alpha and beta
  times 9 (weight 1, CE 1, warm-up kept).
- ``ctkd``, curriculum temperature (Li et al., AAAI 2023; zhengli97/CTKD @ 7d52522): the host's
  temperature T becomes t_start + t_end * sigmoid(theta) with one learnable global theta
  (initial 1, trained by the run's optimizer), seen through a gradient reversal layer whose
  factor lambda follows a cosine curriculum over ``loops`` epochs from ``lambda_max`` 0 to
  ``lambda_min`` -1: lambda(e) = (cos(min(e + 1, loops) pi / loops) + 1) / 2 (max - min) + min
  for the 0-based epoch e (the official 1-based epoch). The temperature thus *maximises* the
  host loss, increasingly. KD hosts keep the KD baseline's CE 0.1 + KD 0.9.

A composed loss is an ordinary registered-looking class: ``loss_class("kd@ls")`` builds (once)
a :class:`ModifiedLoss` subclass whose ``name`` is the canonical label (modifiers sorted),
whose ``default_weight`` and ``hparams`` are the host's with the modifier's overrides, plus the
modifier's own options. So the suite grammar, the config hash (the term name and its
hyperparameters), the Optuna space and the leaderboard all see ``dkd@ls`` as one term.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from benchmark.errors import user_error
from losses import functional
from losses.registry import LOGITS, DistillLoss, HParam

SEPARATOR = "@"
_MODIFIERS: dict[str, type["Modifier"]] = {}
_COMPOSED: dict[str, type["ModifiedLoss"]] = {}


class Modifier(nn.Module):
    """Base class: transforms the logits a host sees and may supply its temperature."""

    name: ClassVar[str] = ""
    options: ClassVar[dict[str, Any]] = {}
    requires_temperature: ClassVar[bool] = False
    #: host name -> {hparam: new default}, and host name -> new default weight.
    host_defaults: ClassVar[dict[str, dict[str, float]]] = {}
    host_weights: ClassVar[dict[str, float]] = {}

    def __init__(self, **config: Any):
        super().__init__()
        self.config = {**self.options, **config}
        self.epoch = 0

    @classmethod
    def applies_to(cls, host: type[DistillLoss]) -> bool:
        if not getattr(host, "logit_host", False):
            return False
        return not cls.requires_temperature or "T" in host.hparams

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def transform(self, z_s: Tensor, z_t: Tensor) -> tuple[Tensor, Tensor]:
        return z_s, z_t

    def temperature(self) -> Tensor | None:
        return None


def register_modifier(name: str):
    """Class decorator: register a :class:`Modifier` under ``name``."""

    def decorate(cls: type[Modifier]) -> type[Modifier]:
        cls.name = name
        _MODIFIERS[name] = cls
        return cls

    return decorate


def list_modifiers() -> list[str]:
    return sorted(_MODIFIERS)


@register_modifier("ls")
class LogitStandardization(Modifier):
    """Both logit sets standardised per sample (mean 0, unbiased std 1)."""

    host_defaults = {"kd": {"T": 2.0}, "dkd": {"T": 2.0, "alpha": 9.0, "beta": 72.0}}
    host_weights = {"kd": 9.0}

    def transform(self, z_s: Tensor, z_t: Tensor) -> tuple[Tensor, Tensor]:
        return functional.standardize_logits(z_s), functional.standardize_logits(z_t)


class _ScaledGradient(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by ``factor`` (gradient reversal
    when negative)."""

    @staticmethod
    def forward(ctx, x: Tensor, factor: float) -> Tensor:
        ctx.factor = factor
        return x.clone()

    @staticmethod
    def backward(ctx, grad: Tensor):
        return grad * ctx.factor, None


def cosine_curriculum(epoch: int, loops: float, high: float, low: float) -> float:
    """CTKD's lambda for the 0-based ``epoch``: from ``high`` towards ``low`` over ``loops``."""
    step = min(max(epoch + 1, 0), loops)
    return (math.cos(step * math.pi / loops) + 1.0) / 2.0 * (high - low) + low


@register_modifier("ctkd")
class CurriculumTemperature(Modifier):
    """A learnable global temperature behind a curriculum gradient reversal."""

    options = {"t_start": 1.0, "t_end": 20.0, "loops": 10, "lambda_max": 0.0,
               "lambda_min": -1.0, "init": 1.0}
    requires_temperature = True

    def __init__(self, **config: Any):
        super().__init__(**config)
        self.theta = nn.Parameter(torch.full((1,), float(self.config["init"])))

    def curriculum(self) -> float:
        return cosine_curriculum(self.epoch, float(self.config["loops"]),
                                 float(self.config["lambda_max"]),
                                 float(self.config["lambda_min"]))

    def temperature(self) -> Tensor:
        theta = _ScaledGradient.apply(self.theta, self.curriculum())
        return (float(self.config["t_start"])
                + float(self.config["t_end"]) * torch.sigmoid(theta)).squeeze(0)


class ModifiedLoss(DistillLoss):
    """A host logit loss seen through modifiers; see the module docstring."""

    host_class: ClassVar[type[DistillLoss]]
    modifier_classes: ClassVar[tuple[type[Modifier], ...]] = ()

    def __init__(self, student_taps, teacher_taps, context=None, **config):
        super().__init__(student_taps, teacher_taps, context, **config)
        own = {name for cls in self.modifier_classes for name in cls.options}
        host_config = {k: v for k, v in self.config.items() if k not in own}
        self.host = self.host_class(student_taps, teacher_taps, context, **host_config)
        self.modifiers = nn.ModuleList(
            cls(**{k: v for k, v in self.config.items() if k in cls.options})
            for cls in self.modifier_classes)
        self.student_tap_names = self.host.student_tap_names
        self.teacher_tap_names = self.host.teacher_tap_names
        temperatures = [m for m in self.modifiers if m.requires_temperature]
        if temperatures:
            self.host.temperature_override = temperatures[-1].temperature

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.host.set_epoch(epoch)
        for modifier in self.modifiers:
            modifier.set_epoch(epoch)

    def forward(self, student_feats, teacher_feats, labels=None, indices=None):
        z_s, z_t = student_feats[LOGITS], teacher_feats[LOGITS]
        for modifier in self.modifiers:
            z_s, z_t = modifier.transform(z_s, z_t)
        return self.host({**student_feats, LOGITS: z_s}, {**teacher_feats, LOGITS: z_t},
                         labels=labels, indices=indices)


def split_label(name: str) -> tuple[str, list[str]]:
    host, *modifiers = [part.strip() for part in str(name).split(SEPARATOR)]
    return host, modifiers


def canonical(name: str) -> str:
    """``host@m1@m2`` with the modifiers sorted (their order does not change the loss)."""
    host, modifiers = split_label(name)
    return SEPARATOR.join([host, *sorted(modifiers)])


def modified_loss_class(name: str, host_class: type[DistillLoss]) -> type[ModifiedLoss]:
    """The composed class for ``name`` = ``host@modifier[@...]`` (built once, cached)."""
    key = canonical(name)
    if key in _COMPOSED:
        return _COMPOSED[key]
    host, modifier_names = split_label(key)
    modifiers = [_modifier_class(m, key) for m in modifier_names]
    if len(set(modifier_names)) != len(modifier_names) or not modifier_names:
        raise user_error(f"Loss label '{name}' repeats a modifier or names none", "loss label",
                         f"Write host@modifier, e.g. 'kd@ls'; modifiers: {list_modifiers()}")
    for modifier in modifiers:
        if not modifier.applies_to(host_class):
            raise user_error(
                f"Modifier '{modifier.name}' does not apply to loss '{host}' (it modifies logit "
                f"losses{' with a temperature T' if modifier.requires_temperature else ''})",
                f"loss label '{name}'", "Use it on a logit loss, e.g. kd@ls, dkd@ls, kd@ctkd")
    _COMPOSED[key] = _compose(key, host_class, modifiers)
    return _COMPOSED[key]


def _modifier_class(name: str, label: str) -> type[Modifier]:
    if name not in _MODIFIERS:
        raise user_error(f"Unknown modifier '{name}' in loss label '{label}'", "loss label",
                         f"Known modifiers: {', '.join(list_modifiers())} (write e.g. kd@ls)")
    return _MODIFIERS[name]


def _compose(key: str, host: type[DistillLoss], modifiers: list[type[Modifier]]):
    hparams, weight = dict(host.hparams), host.default_weight
    for modifier in modifiers:
        for hp_name, default in modifier.host_defaults.get(host.name, {}).items():
            old = hparams[hp_name]
            hparams[hp_name] = HParam(default, min(old.low, default), max(old.high, default),
                                      old.log)
        weight = modifier.host_weights.get(host.name, weight)
    if any(m.requires_temperature for m in modifiers):
        hparams.pop("T", None)  # the modifier supplies the temperature
    options = dict(host.options)
    for modifier in modifiers:
        options.update(modifier.options)
    attributes = {
        "name": key, "default_weight": weight, "hparams": hparams, "options": options,
        "weight_range": host.weight_range, "needs_labels": host.needs_labels,
        "needs_indices": host.needs_indices, "needs_context": host.needs_context,
        "needs_teacher": host.needs_teacher, "host_class": host,
        "modifier_classes": tuple(modifiers), "__module__": __name__,
        "__doc__": f"{host.name} seen through {', '.join(m.name for m in modifiers)}.",
    }
    return type(f"Modified_{key.replace(SEPARATOR, '_')}", (ModifiedLoss,), attributes)
