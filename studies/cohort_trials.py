"""The objective: k trials of one study trained as ONE cohort of the harness engine.

The trials share dataset, pair, seed and recipe, so they train from one data stream with one
teacher forward per batch (:class:`benchmark.engine.Cohort`). The engine evaluates only the
validation split (``RunEnv(eval_splits=("val",))``): the test set is never looked at. After each
epoch a trial reports its ``val_acc`` to Optuna (step = epoch) and asks the pruner; a pruned
trial stops training while the rest of the cohort goes on. The objective value is the last
epoch's ``val_acc``; each trial is told COMPLETE with it, PRUNED, or FAIL.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Optional

import optuna
from optuna.trial import TrialState

from benchmark.store import Store

OBJECTIVE_METRIC = "val_acc"
FAIL_REASON_ATTR = "fail_reason"


@dataclass
class TrialWork:
    """One asked trial: its Optuna handle, run spec and MLflow run."""

    trial: optuna.Trial
    spec: object  # benchmark.plan.RunSpec
    run_id: Optional[str] = None
    reported: int = 0  # epochs already reported to Optuna


@dataclass
class TrialOutcome:
    number: int
    state: TrialState
    value: Optional[float]
    epochs_trained: int
    reason: Optional[str] = None


class CohortObjective:
    """Trains batches of trials for one study and tells Optuna how each ended."""

    def __init__(self, study, env, runs, heartbeat):
        self.study = study
        self.env = env  # benchmark.engine.RunEnv with eval_splits=("val",)
        self.runs = runs  # studies.mlflow_runs.StudyRuns
        self.heartbeat = heartbeat

    def __call__(self, works: list[TrialWork]) -> list[TrialOutcome]:
        from benchmark.engine import Cohort, RunResult

        by_hash = {w.spec.config_hash: w for w in works}
        self.env.run_ids.update({h: w.run_id for h, w in by_hash.items() if w.run_id})
        try:
            cohort = Cohort([w.spec for w in works], self.env, on_epoch=self._on_epoch(by_hash))
            results = cohort.run()
            histories = {m.spec.config_hash: m.history for m in cohort.members}
        except Exception as err:  # the cohort could not start: every trial fails with the reason
            reason = f"{type(err).__name__}: {err}"
            results = [RunResult(w.spec, "FAILED", reason=reason) for w in works]
            histories = {}
        return [self._tell(by_hash[r.spec.config_hash], r, histories.get(r.spec.config_hash, []))
                for r in results]

    def _on_epoch(self, by_hash: dict):
        def on_epoch(member, metrics) -> Optional[str]:
            work = by_hash[member.spec.config_hash]
            self._report(work, member.history, logged_by_engine=1)
            if member.epoch >= member.spec.recipe.epochs:
                return None  # the last epoch: the trial is complete, nothing left to save
            return "prune" if work.trial.should_prune() else None
        return on_epoch

    def _report(self, work: TrialWork, history: list[dict], logged_by_engine: int = 0) -> None:
        """Report epochs not yet reported; log to MLflow those the engine did not log here
        (epochs a resumed trial trained before its previous process died)."""
        new = list(range(work.reported + 1, len(history) + 1))
        for epoch in new:
            work.trial.report(float(history[epoch - 1][OBJECTIVE_METRIC]), epoch)
        missing_in_mlflow = new[:len(new) - logged_by_engine]
        if work.run_id and missing_in_mlflow:
            self.runs.backfill(work.run_id, history, missing_in_mlflow)
        work.reported = len(history)

    def _tell(self, work: TrialWork, result, history: list[dict]) -> TrialOutcome:
        self._report(work, history)
        value, reason = None, result.reason
        if result.status == "FINISHED" and history:
            state, value = TrialState.COMPLETE, float(history[-1][OBJECTIVE_METRIC])
        elif result.status == "PRUNED":
            state = TrialState.PRUNED
        else:
            state = TrialState.FAIL
            reason = reason or "the run ended without a validation accuracy"
        self._tell_optuna(work.trial, state, value, reason)
        if work.run_id:
            self.runs.end_trial(work.run_id, state, work.spec.recipe.epochs, value, reason)
        self.heartbeat.remove(work.trial)
        # a told trial needs neither its epoch checkpoint nor its student weights
        Store(self.env.store).remove_run_files(work.spec.config_hash)
        return TrialOutcome(work.trial.number, state, value, len(history), reason)

    def _tell_optuna(self, trial, state: TrialState, value, reason) -> None:
        try:
            if reason:
                trial.set_user_attr(FAIL_REASON_ATTR, reason[:1000])
            if state == TrialState.COMPLETE:
                self.study.tell(trial, value)
            else:
                self.study.tell(trial, state=state)
        except (ValueError, RuntimeError, optuna.exceptions.UpdateFinishedTrialError) as err:
            print(f"kdbench tune: trial {trial.number} was already closed by another process "
                  f"({err}); its result is dropped.", file=sys.stderr)
