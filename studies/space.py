"""The search space of a study, read from the loss registry.

A study tunes the *method* term(s) of one leaderboard label: for ``sp`` the SP weight, for
``sp+kd`` the SP weight (KD keeps its protocol weight), for ``kd`` the KD weight. Each weight is
searched log-uniformly over the suite's ``weight_ranges`` entry for it, else the class's
``search_weight_range()`` (``weight_range`` or [default/10, default*10]). ``--space full`` adds the term's declared hyperparameters
(``hparams: {name: HParam(default, low, high, log)}``, e.g. KD's T, CRD's tau), except those the
suite pins to a value (digits pins CRD's K because the data set is too small for the default).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

SPACES = ("weight", "full")
BASELINE_TERMS = ("ce",)
KD_TERM = "kd"


@dataclass(frozen=True)
class SearchParam:
    """One searched value: the weight of a term, or one of its hyperparameters."""

    term: str
    field: str  # "weight" or the hyperparameter's name
    low: float
    high: float
    log: bool = True
    integer: bool = False

    @property
    def name(self) -> str:
        """The Optuna parameter name: ``weight.sp``, ``kd.T``."""
        return f"weight.{self.term}" if self.field == "weight" else f"{self.term}.{self.field}"

    def distribution(self):
        from optuna.distributions import FloatDistribution, IntDistribution

        if self.integer:
            return IntDistribution(int(self.low), int(self.high), log=self.log)
        return FloatDistribution(float(self.low), float(self.high), log=self.log)


def tuned_terms(terms: Iterable[str]) -> list[str]:
    """The terms a study tunes: every non-CE term, except KD when it rides along a method."""
    distill = [t for t in terms if t not in BASELINE_TERMS]
    methods = [t for t in distill if t.split("@")[0] != KD_TERM]  # kd@ls rides along too
    return methods or distill


def search_space(terms: Iterable[str], space: str = "weight",
                 pinned: Mapping[str, Iterable[str]] | None = None,
                 ranges: Mapping[str, tuple[float, float]] | None = None) -> list[SearchParam]:
    """The parameters searched for ``terms``; ``pinned[term]`` lists hparams kept fixed;
    ``ranges[term]`` (a suite's ``weight_ranges``) replaces the class's weight range."""
    from benchmark.errors import user_error
    from losses import loss_class

    if space not in SPACES:
        raise user_error(f"unknown search space '{space}'", "--space",
                         f"use one of: {', '.join(SPACES)}")
    pinned = pinned or {}
    params = []
    for term in terms:
        cls = loss_class(term)
        low, high = (ranges or {}).get(term) or cls.search_weight_range()
        params.append(SearchParam(term, "weight", float(low), float(high), log=True))
        if space == "full":
            params += [SearchParam(term, name, hp.low, hp.high, log=hp.log,
                                   integer=hp.is_integer)
                       for name, hp in sorted(cls.hparams.items())
                       if name not in set(pinned.get(term, ()))]
    return params


def distributions(params: Iterable[SearchParam]) -> dict[str, Any]:
    """``{param name: optuna distribution}`` for ``study.ask(fixed_distributions=...)``."""
    return {p.name: p.distribution() for p in params}


def apply_params(spec, params: Iterable[SearchParam], values: Mapping[str, Any]):
    """A copy of the run spec with the sampled weights and hyperparameters filled in."""
    weights = dict(spec.terms)
    hparams = {term: dict(items) for term, items in spec.hparams}
    for param in params:
        value = values[param.name]
        if param.field == "weight":
            weights[param.term] = float(value)
        else:
            hparams.setdefault(param.term, {})[param.field] = (
                int(value) if param.integer else float(value))
    return spec.model_copy(update={
        "terms": tuple(sorted(weights.items())),
        "hparams": tuple((t, tuple(sorted(hparams[t].items()))) for t in sorted(hparams)),
    })
