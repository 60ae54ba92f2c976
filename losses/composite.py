"""A run's objective as a list of weighted terms, and the leaderboard labels that name them.

PROTOCOL §1: total = ce_weight * CE + kd_weight * KD + beta * L_method. So "sp+kd" or
"crd+pkt" are configurations of registered losses, not new classes:

- ``"student"`` -> ``{ce: 1}`` (the CE-only baseline);
- ``"kd"`` -> ``{ce: 0.1, kd: 0.9}`` (the KD baseline, T = 4);
- ``"X"`` -> ``{ce: 1, X: "default"}`` (method runs: ce 1, kd 0, beta = X's default weight);
- ``"X+kd"`` -> ``{ce: 1, kd: 1, X: "default"}``;
- ``"X+Y"`` (e.g. ``"crd+pkt"``) -> ``{ce: 1, X: "default", Y: "default"}``;
- a method whose class declares ``ce_weight`` uses it in its own label (``"simkd"`` ->
  ``{ce: 0, simkd: "default"}``, the official ``-c 0``).

A term may carry logit modifiers, ``host@modifier`` (``kd@ls``, ``dkd@ls``, ``kd@ctkd``; see
:mod:`losses.modifiers`): it is one term, written canonically (modifiers sorted), whose default
weight is the modified class's. A KD host keeps the KD baseline's form: ``"kd@ls"`` ->
``{ce: 0.1, kd@ls: "default"}`` (LS's weight 9), ``"kd@ctkd"`` -> ``{ce: 0.1, kd@ctkd: 0.9}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from benchmark.errors import user_error
from losses.registry import (MODIFIER_SEPARATOR, DistillLoss, LossContext, create_loss,
                             loss_class)

DEFAULT = "default"
CE, KD, STUDENT = "ce", "kd", "student"
CE_WEIGHT_KD_BASELINE, KD_WEIGHT_KD_BASELINE = 0.1, 0.9
CE_WEIGHT, KD_WEIGHT_WITH_METHOD = 1.0, 1.0


def expand_loss_label(label: str) -> dict[str, float | str]:
    """The weighted terms a leaderboard label stands for (PROTOCOL §1).

    Terms are checked against the registry; ``"default"`` marks a method term whose weight is
    its class's ``default_weight``. Unknown terms, repeated terms or an empty label raise
    ``UserError``.
    """
    terms = [canonical_term(part) for part in str(label).split("+")]
    if not all(terms):
        raise user_error(f"Loss label '{label}' has an empty term", "loss label",
                         "Write terms joined by '+', e.g. 'sp+kd'")
    if len(set(terms)) != len(terms):
        raise user_error(f"Loss label '{label}' repeats a term", "loss label",
                         "Name each loss once, e.g. 'sp+kd'")
    if terms == [STUDENT] or terms == [CE]:
        return {CE: CE_WEIGHT}
    if terms == [KD]:
        return {CE: CE_WEIGHT_KD_BASELINE, KD: KD_WEIGHT_KD_BASELINE}
    if len(terms) == 1 and host_of(terms[0]) == KD:
        loss_class(terms[0])
        return {CE: CE_WEIGHT_KD_BASELINE, terms[0]: DEFAULT}
    if STUDENT in terms or CE in terms:
        raise user_error(f"Loss label '{label}' combines '{STUDENT}'/'{CE}' with other terms",
                         "loss label", "CE is part of every label; write e.g. 'sp' or 'sp+kd'")
    classes = [loss_class(term) for term in terms]
    own_ce = [c.ce_weight for c in classes if c.ce_weight is not None]
    expanded: dict[str, float | str] = {CE: own_ce[0] if len(terms) == 1 and own_ce else CE_WEIGHT}
    expanded.update({term: KD_WEIGHT_WITH_METHOD for term in terms if host_of(term) == KD})
    expanded.update({term: DEFAULT for term in terms if host_of(term) != KD})
    return expanded


def canonical_term(term: str) -> str:
    """A term name with its modifiers sorted (``kd@ls@ctkd`` -> ``kd@ctkd@ls``)."""
    term = term.strip()
    if MODIFIER_SEPARATOR not in term:
        return term
    from losses.modifiers import canonical

    return canonical(term)


def host_of(term: str) -> str:
    """The host loss of a term (``dkd@ls`` -> ``dkd``)."""
    return term.split(MODIFIER_SEPARATOR, 1)[0]


def resolve_weights(terms: Mapping[str, float | str]) -> dict[str, float]:
    """Replace every ``"default"`` weight by the class's ``default_weight``."""
    return {name: float(loss_class(name).default_weight) if weight == DEFAULT else float(weight)
            for name, weight in terms.items()}


class WeightedLoss(nn.Module):
    """Sum of weighted loss terms: ``forward(...) -> (total, {term: weighted value, detached})``.

    ``terms``: ``{name: (weight, loss module)}``. Every term is evaluated (a term's forward may
    update state, e.g. CRD's banks), in the order given, except ``stage_only`` terms, which
    train only in their pre-training stage.
    """

    def __init__(self, terms: Mapping[str, tuple[float, DistillLoss]]):
        super().__init__()
        if not terms:
            raise ValueError("WeightedLoss needs at least one term")
        self.weights = {name: float(weight) for name, (weight, _) in terms.items()}
        self.terms = nn.ModuleDict({name: module for name, (_, module) in terms.items()})

    @property
    def student_tap_names(self) -> list[str]:
        return _union(module.student_tap_names for module in self.terms.values())

    @property
    def teacher_tap_names(self) -> list[str]:
        return _union(module.teacher_tap_names for module in self.terms.values())

    @property
    def needs_labels(self) -> bool:
        return any(module.needs_labels for module in self.terms.values())

    @property
    def needs_indices(self) -> bool:
        return any(module.needs_indices for module in self.terms.values())

    @property
    def head_owner(self) -> DistillLoss | None:
        """The term that classifies the student at test time (SimKD), if any."""
        owners = [module for module in self.terms.values() if module.owns_head]
        if len(owners) > 1:
            raise ValueError(f"terms {[m.name for m in owners]} all own the student's head")
        return owners[0] if owners else None

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The main training's parts: stage-only terms (AB, FSP) are frozen after their stage."""
        return [p for module in self.terms.values() if not module.stage_only
                for p in module.trainable_parameters()]

    def staged_terms(self) -> dict[str, DistillLoss]:
        """Terms with a pre-training stage (``pretrain_epochs() > 0``)."""
        return {name: module for name, module in self.terms.items() if module.pretrain_epochs()}

    def set_epoch(self, epoch: int) -> None:
        """Tell every term the 0-based index of the epoch about to train (schedules)."""
        for module in self.terms.values():
            module.set_epoch(epoch)

    def forward(self, student_feats: Mapping[str, Tensor], teacher_feats: Mapping[str, Tensor],
                labels: Tensor | None = None,
                indices: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        parts: dict[str, Tensor] = {}
        total: Tensor | None = None
        for name, module in self.terms.items():
            if module.stage_only:  # trained in its stage only (AB, FSP: then CE alone)
                continue
            value = self.weights[name] * module(student_feats, teacher_feats, labels=labels,
                                                indices=indices)
            parts[name] = value.detach()
            total = value if total is None else total + value
        return total, parts

    def extra_repr(self) -> str:
        return ", ".join(f"{name}: {weight:g}" for name, weight in self.weights.items())


def create_weighted_loss(label_or_terms: str | Mapping[str, float | str],
                         student_taps: Mapping[str, Any], teacher_taps: Mapping[str, Any],
                         context: LossContext | None = None,
                         hparams: Mapping[str, Mapping[str, Any]] | None = None) -> WeightedLoss:
    """Build the :class:`WeightedLoss` for a label (``"sp+kd"``) or an explicit term dict."""
    terms = (expand_loss_label(label_or_terms) if isinstance(label_or_terms, str)
             else dict(label_or_terms))
    weights = resolve_weights(terms)
    hparams = hparams or {}
    return WeightedLoss({
        name: (weight, create_loss(name, student_taps, teacher_taps, context,
                                   **dict(hparams.get(name, {}))))
        for name, weight in weights.items()
    })


def _union(lists) -> list[str]:
    merged: dict[str, None] = {}
    for names in lists:
        merged.update(dict.fromkeys(names))
    return list(merged)


__all__ = ["DEFAULT", "WeightedLoss", "create_weighted_loss", "expand_loss_label",
           "resolve_weights"]
