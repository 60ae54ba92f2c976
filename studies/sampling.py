"""Samplers and pruners of a study, seeded so a study can be reproduced.

The sampler is rebuilt for every trial with the seed ``hash(seed, trial number)``: TPE and random
sampling keep no state besides their random generator (they read the history from the storage),
so this makes a trial's proposal depend only on the seed, its number and the trials before it.
A restarted process does not replay the proposals of the first one, and two processes sharing a
study do not propose the same values.

Pruners read per-epoch validation accuracy (``trial.report(val_acc, epoch)``):
``median`` (Optuna's MedianPruner, the default; no pruning during the first quarter of the
schedule or before a few trials completed) and ``hyperband`` (HyperbandPruner over epochs).
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable

from optuna.samplers import BaseSampler, RandomSampler, TPESampler

from benchmark.errors import user_error

SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "hyperband", "none")
MEDIAN_STARTUP_TRIALS = 4


def trial_seed(seed: int, number: int) -> int:
    """A 32-bit seed for trial ``number`` of a study sampled with ``seed``."""
    digest = hashlib.sha256(f"{seed}:{number}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


class TrialSeededSampler(BaseSampler):
    """Delegates to a sampler built afresh, per trial, with a seed derived from its number."""

    def __init__(self, factory: Callable[[int], BaseSampler], seed: int):
        self._factory = factory
        self._seed = seed
        self._inner = factory(trial_seed(seed, 0))

    def before_trial(self, study, trial) -> None:
        self._inner = self._factory(trial_seed(self._seed, trial.number))
        self._inner.before_trial(study, trial)

    def infer_relative_search_space(self, study, trial) -> dict[str, Any]:
        return self._inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space) -> dict[str, Any]:
        return self._inner.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution) -> Any:
        return self._inner.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values) -> None:
        self._inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._inner.reseed_rng()


def startup_trials(budget: int) -> int:
    """Random trials before TPE models the results: a third of the budget, 2 to 10."""
    return max(2, min(10, budget // 3))


def make_sampler(name: str, seed: int, budget: int = 30) -> BaseSampler:
    """``tpe`` (TPE with constant liar, good for batches of concurrent trials; its random
    start-up phase is a third of the budget) or ``random``."""
    if name == "tpe":
        startup = startup_trials(budget)
        return TrialSeededSampler(
            lambda s: TPESampler(seed=s, constant_liar=True, n_startup_trials=startup), seed)
    if name == "random":
        return TrialSeededSampler(lambda s: RandomSampler(seed=s), seed)
    raise user_error(f"unknown sampler '{name}'", "--sampler", f"use one of: {', '.join(SAMPLERS)}")


def make_pruner(name: str, epochs: int):
    """The pruner for a schedule of ``epochs`` epochs (steps are 1-based epochs)."""
    from optuna.pruners import HyperbandPruner, MedianPruner, NopPruner

    if name == "median":
        return MedianPruner(n_startup_trials=MEDIAN_STARTUP_TRIALS,
                            n_warmup_steps=max(1, epochs // 4))
    if name == "hyperband":
        return HyperbandPruner(min_resource=1, max_resource=max(epochs, 1), reduction_factor=3)
    if name == "none":
        return NopPruner()
    raise user_error(f"unknown pruner '{name}'", "--pruner", f"use one of: {', '.join(PRUNERS)}")
