"""MLflow records of studies: a parent run per study, a nested run per trial.

The runs live in the experiment ``kdbench/<suite>-tune`` (apart from the suite's leaderboard
experiment). The parent run (tag ``kdbench.role=study``) holds the study's budget as params and,
as each process finishes, the best value and best parameters (metrics ``best_val_acc`` and
``best.<param>``, tags ``best.<param>``; params are write-once in MLflow, metrics are not, and
several processes update the same parent). A trial's run (tag ``kdbench.role=trial``, tag
``mlflow.parentRunId``) holds the resolved run config as params, the per-epoch metrics the
engine logs, and its final state (tag ``trial_state``: complete, pruned or failed; MLflow status
FINISHED, KILLED or FAILED).
"""

from __future__ import annotations

from optuna.trial import TrialState

from benchmark.records import Role, Status, Tag, tune_suite

PARENT_ATTR = "mlflow_parent_runs"  # {tracking URI: parent run id}
RUN_ID_ATTR = "kdbench.mlflow_run_id"
STATE_NAMES = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned",
               TrialState.FAIL: "failed"}
MLFLOW_STATUS = {TrialState.COMPLETE: Status.FINISHED, TrialState.PRUNED: Status.KILLED,
                 TrialState.FAIL: Status.FAILED}


def open_tracker(tracking_uri=None):
    """A :class:`benchmark.tracking.Tracker` (it opens a fresh SQLite store under the store's
    lock, so processes starting together do not collide creating its tables)."""
    from benchmark.tracking import Tracker

    return Tracker(tracking_uri)


def tune_experiment(suite: str) -> str:
    """The Tracker's suite key whose experiment (``kdbench/<suite>-tune``) holds studies."""
    return tune_suite(suite)


class StudyRuns:
    """MLflow runs of one study, through :class:`benchmark.tracking.Tracker`."""

    def __init__(self, tracker, study, target, storage_url: str):
        self.tracker = tracker
        self.study = study
        self.target = target
        self.storage_url = storage_url
        self.experiment = tune_experiment(target.suite)
        self.parent_id = None

    # ----- the study's parent run -----
    def open_parent(self, lock) -> str:
        """The study's parent run, created by the first process (under the study lock)."""
        with lock:
            from studies.storage import public_url

            key = public_url(self.tracker.uri)
            parents = dict(self.study.user_attrs.get(PARENT_ATTR, {}))
            self.parent_id = parents.get(key)
            if self.parent_id is None:
                self.parent_id = self._create_parent()
                parents[key] = self.parent_id
                self.study.set_user_attr(PARENT_ATTR, parents)
        self.tracker.reopen_run(self.parent_id)
        return self.parent_id

    def _create_parent(self) -> str:
        from benchmark.tracking import run_environment_tags
        from studies.storage import public_url

        t = self.target
        tags = {**run_environment_tags(), Tag.ROLE: Role.STUDY, Tag.SUITE: t.suite,
                Tag.DATASET: t.dataset, Tag.TEACHER: t.teacher, Tag.STUDENT: t.student,
                Tag.LOSS: t.loss, "optuna.study": self.study.study_name, "optuna.storage":
                public_url(self.storage_url), Tag.RUN_NAME: f"study {self.study.study_name}"}
        exp_id = self.tracker.experiment_id(self.experiment)
        params = {k: v for k, v in self.study.user_attrs.items()
                  if k not in (PARENT_ATTR, "trials")}
        return self.tracker.create_run(exp_id, tags, params)

    def update_parent(self, finished: bool) -> None:
        """Log the best trial so far and the trial counts; close the run when the study is done."""
        trials = self.study.get_trials(deepcopy=False)
        counts = {name: sum(t.state == state for t in trials) for state, name in
                  STATE_NAMES.items()}
        metrics = {f"n_{name}": float(n) for name, n in counts.items()}
        tags = {"trials_budget": str(self.study.user_attrs.get("trials", ""))}
        if counts["complete"]:
            best = self.study.best_trial
            metrics["best_val_acc"] = float(best.value)
            metrics.update({f"best.{k}": float(v) for k, v in best.params.items()})
            tags.update({f"best.{k}": repr(v) for k, v in best.params.items()})
            tags["best_trial"] = str(best.number)
        step = sum(counts.values())
        self.tracker.log_metrics(self.parent_id, metrics, step=step)
        self.tracker.set_tags(self.parent_id, tags)
        if finished:
            self.tracker.finish(self.parent_id, Status.FINISHED)

    # ----- trial runs -----
    def start_trial(self, trial, spec) -> str:
        tags = {Tag.ROLE: Role.TRIAL, Tag.PARENT_RUN: self.parent_id,
                "optuna.study": self.study.study_name, "optuna.trial": str(trial.number)}
        run_id = self.tracker.start_run(self.experiment, spec, tags)
        self.tracker.set_tags(run_id, {Tag.RUN_NAME: f"trial {trial.number}"})
        trial.set_user_attr(RUN_ID_ATTR, run_id)
        return run_id

    def backfill(self, run_id: str, history: list[dict], epochs: list[int]) -> None:
        """Log epochs a resumed trial trained before its process died."""
        for epoch in epochs:
            self.tracker.log_metrics(run_id, history[epoch - 1], step=epoch)

    def end_trial(self, run_id: str, state: TrialState, epochs: int, value=None,
                  reason=None) -> None:
        """Close a trial's run: its objective value (complete trials) and final state."""
        if value is not None:
            self.tracker.log_metrics(run_id, {"objective_val_acc": float(value)}, step=epochs)
        self.tracker.set_tags(run_id, {"trial_state": STATE_NAMES[state]})
        self.tracker.finish(run_id, MLFLOW_STATUS[state], reason=reason)

    def close_stale(self, frozen) -> None:
        """The run of a trial whose process died: FAILED, with the reason."""
        run_id = frozen.user_attrs.get(RUN_ID_ATTR)
        if run_id:
            self.tracker.set_tags(run_id, {"trial_state": "failed"})
            self.tracker.finish(run_id, Status.FAILED, reason="its process stopped (no heartbeat); "
                                "retried as a new trial resuming from its checkpoint")
