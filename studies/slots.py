"""Asking trials within a study's budget, shared by any number of processes.

A trial *counts* towards the budget N when it is COMPLETE, PRUNED, RUNNING, WAITING, or FAIL for
a reason of its own (a diverging loss). Trials failed because their process died are retried
(see :mod:`studies.recovery`) and do not count; neither do over-budget trials set aside below.

Each process, before asking, recovers stale trials and asks ``min(k, N - counted + waiting)``
trials (waiting trials are retries; ``ask`` takes them first). On SQLite and journal files this
happens under a lock file, so processes on one machine never ask more than N between them. On a
database server two machines may count at the same moment; a trial whose rank among the counted
trials (by trial number) is N or more is then marked over budget and failed, so exactly N count.
"""

from __future__ import annotations

from optuna.trial import TrialState

from studies import heartbeat
from studies.recovery import recover_stale_trials, retried_numbers

OVERFLOW_ATTR = "kdbench.over_budget"
LIVE_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)


def counted_trials(study) -> list:
    """The frozen trials that use one unit of the study's budget each."""
    trials = study.get_trials(deepcopy=False)
    retried = retried_numbers(trials)
    return [t for t in trials
            if not t.user_attrs.get(OVERFLOW_ATTR) and t.number not in retried
            and (t.state in LIVE_STATES or t.state == TrialState.FAIL)]


def open_slots(study, budget: int) -> int:
    """How many trials this process may ask now (waiting retries included)."""
    trials = counted_trials(study)
    waiting = sum(t.state == TrialState.WAITING for t in trials)
    return max(0, budget - len(trials)) + waiting


def ask_trials(study, budget: int, k: int, distributions: dict, lock, grace_s: float) -> tuple:
    """Up to ``k`` new trials claimed by this process, and the stale trials recovered meanwhile.

    Returns ``(trials, stale)``: Optuna ``Trial`` objects and frozen failed trials.
    """
    with lock:
        stale = recover_stale_trials(study, grace_s)
        asked = []
        for _ in range(min(k, open_slots(study, budget))):
            trial = study.ask(distributions)
            heartbeat.claim(trial)
            asked.append(trial)
    return [t for t in asked if not _set_aside_if_over_budget(study, t, budget)], stale


def _set_aside_if_over_budget(study, trial, budget: int) -> bool:
    ranked = sorted(t.number for t in counted_trials(study))
    if trial.number not in ranked or ranked.index(trial.number) < budget:
        return False
    trial.set_user_attr(OVERFLOW_ATTR, True)
    study.tell(trial, state=TrialState.FAIL)
    return True


def budget_done(study, budget: int) -> bool:
    """Nothing left to ask, and no trial running or waiting anywhere."""
    trials = counted_trials(study)
    busy = any(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in trials)
    return len(trials) >= budget and not busy
