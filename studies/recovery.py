"""Trials left RUNNING by a process that died (SIGKILL, power loss, a lost machine).

Such a trial is failed and its parameters are enqueued again, tagged ``kdbench.retry_of`` with
the dead trial's number. Because the retry samples nothing new, its run spec and config hash are
those of the dead trial, so the engine resumes it from the dead trial's last epoch checkpoint:
an interrupted study continues where it stopped instead of starting over. A failed trial that
has been retried does not count towards the budget (its retry does).
"""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from studies.heartbeat import is_stale

RETRY_ATTR = "kdbench.retry_of"


def retried_numbers(trials) -> set[int]:
    """Numbers of the trials that have been retried."""
    return {int(t.user_attrs[RETRY_ATTR]) for t in trials if RETRY_ATTR in t.user_attrs}


def recover_stale_trials(study, grace_s: float) -> list:
    """Fail every stale RUNNING trial and enqueue a retry; returns the failed frozen trials."""
    recovered = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not is_stale(trial, grace_s):
            continue
        try:
            study.tell(trial.number, state=TrialState.FAIL)
        except (ValueError, RuntimeError, optuna.exceptions.UpdateFinishedTrialError):
            continue  # another process recovered it first, or its owner just finished it
        study.enqueue_trial(dict(trial.params), user_attrs={RETRY_ATTR: trial.number})
        recovered.append(trial)
    return recovered
