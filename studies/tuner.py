"""``kdbench tune``: one Optuna study per target, trials trained as cohorts, shared storage.

For every target (dataset, pair, loss label) the study is created or joined
(``load_if_exists``), its budget recorded and checked, then this process asks up to
``cohort_size`` trials at a time within the budget, trains them together and tells the results,
until the budget is used up (by this process and any others working on the same study). At the
end each study's MLflow parent run gets the best trial, and the best weight goes to the
tuned-weights file. The loop runs as ``jobs`` workers on an executor (:mod:`benchmark.executors`):
in this process, in local processes, or as Ray tasks on a cluster (``jobs`` 0: one per cluster
slot); all of them, and any other driver on the same storage, share each study's budget.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import optuna

from benchmark.config import SuiteConfig
from benchmark.runner import RunOptions, open_executor, with_absolute_paths
from studies.heartbeat import DEFAULT_GRACE_S, DEFAULT_INTERVAL_S
from studies.storage import absolute_storage
from studies.targets import TargetFilter, TuneTarget

DEFAULT_TRIALS = 12
DEFAULT_COHORT_SIZE = 4


@dataclass
class TuneSettings:
    """How the studies run (the same for every target: that is the fairness rule)."""

    trials: int = DEFAULT_TRIALS
    cohort_size: int = DEFAULT_COHORT_SIZE
    space: str = "weight"
    pruner: str = "median"
    sampler: str = "tpe"
    seed: int = 0
    storage: Optional[str] = None
    study_name: Optional[str] = None
    tuned_weights: Optional[str] = None
    heartbeat_s: float = DEFAULT_INTERVAL_S
    grace_s: float = DEFAULT_GRACE_S
    pruner_object: object = None  # an Optuna pruner instead of ``pruner`` (tests, notebooks)


@dataclass
class StudyReport:
    """What one study holds after this process's work on it."""

    target: TuneTarget
    study_name: str
    trials_here: int = 0
    counted: int = 0
    states: dict[str, int] = field(default_factory=dict)
    best_value: Optional[float] = None
    best_params: dict = field(default_factory=dict)
    entry: Optional[dict] = None
    done: bool = False


def study_name_for(target: TuneTarget, settings: TuneSettings, n_targets: int) -> str:
    """``--study-name`` itself for a single target; otherwise a prefix for each target."""
    if settings.study_name and n_targets == 1:
        return settings.study_name
    return target.study_name(settings.study_name)


def open_study(target: TuneTarget, settings: TuneSettings, name: str):
    """Create or load the study, with its budget recorded (or checked against the record)."""
    from studies.budget import StudyBudget, record_budget
    from studies.sampling import make_pruner, make_sampler
    from studies.storage import open_storage, study_lock

    epochs = target.base.recipe.epochs
    pruner = settings.pruner_object or make_pruner(settings.pruner, epochs)
    storage = open_storage(settings.storage)
    with study_lock(settings.storage):
        study = optuna.create_study(storage=storage, study_name=name, direction="maximize",
                                    sampler=make_sampler(settings.sampler, settings.seed,
                                                        settings.trials),
                                    pruner=pruner, load_if_exists=True)
        budget = StudyBudget.for_target(target, trials=settings.trials, space=settings.space,
                                        pruner=settings.pruner, sampler=settings.sampler,
                                        seed=settings.seed)
        record_budget(study, budget, target)
    return study


def optimize_study(target: TuneTarget, settings: TuneSettings, options: RunOptions,
                   name: str) -> int:
    """Ask, train and tell cohorts of trials until the study's budget is used; returns how many
    trials this process trained."""
    from studies.cohort_trials import CohortObjective, TrialWork
    from studies.heartbeat import Heartbeat
    from studies.mlflow_runs import StudyRuns, open_tracker
    from studies.slots import ask_trials
    from studies.space import apply_params, distributions, search_space
    from studies.storage import storage_url, study_lock

    study = open_study(target, settings, name)
    lock = functools.partial(study_lock, settings.storage)
    space = search_space(target.terms, settings.space, target.pinned, target.ranges)
    runs = StudyRuns(open_tracker(options.tracking_uri), study, target,
                     storage_url(settings.storage))
    runs.open_parent(lock())
    trained = 0
    with Heartbeat(settings.heartbeat_s) as heartbeat:
        objective = CohortObjective(study, _trial_env(options, runs), runs, heartbeat)
        while True:
            trials, stale = ask_trials(study, settings.trials, settings.cohort_size,
                                       distributions(space), lock(), settings.grace_s)
            for frozen in stale:
                runs.close_stale(frozen)
            if not trials:
                return trained
            works = [TrialWork(t, apply_params(target.base, space, t.params)) for t in trials]
            for work in works:
                heartbeat.add(work.trial)
                work.run_id = runs.start_trial(work.trial, work.spec)
            for group in _unique_hash_groups(works):
                outcomes = objective(group)
                trained += len(outcomes)
                _print_outcomes(name, outcomes)


def _trial_env(options: RunOptions, runs):
    """The engine environment of a study's trials: validation split only, never the test set."""
    from benchmark.engine import RunEnv
    from benchmark.runner import resolve_device

    return RunEnv(device=resolve_device(options.device), store=Path(options.store),
                  data_dir=Path(options.data_dir) if options.data_dir else None,
                  download=options.download, tracker=runs.tracker, suite=runs.experiment,
                  progress=options.progress, eval_splits=("val",))


def _unique_hash_groups(works: list) -> list[list]:
    """One cohort, unless two trials drew identical values (then they train one by one)."""
    hashes = [w.spec.config_hash for w in works]
    return [works] if len(set(hashes)) == len(hashes) else [[w] for w in works]


def _print_outcomes(name: str, outcomes) -> None:
    parts = []
    for o in outcomes:
        shown = f"{o.value:.2f}" if o.value is not None else o.state.name.lower()
        parts.append(f"#{o.number} {shown} ({o.epochs_trained} ep)")
    print(f"[{name}] " + ", ".join(parts), flush=True)


def finish_study(target: TuneTarget, settings: TuneSettings, options: RunOptions, name: str,
                 trained: int) -> StudyReport:
    """Log the best trial on the MLflow parent, export the best weight, and report."""
    from studies.mlflow_runs import open_tracker
    from studies.export import export_best
    from studies.mlflow_runs import StudyRuns
    from studies.slots import budget_done, counted_trials
    from studies.storage import storage_url, study_lock

    study = open_study(target, settings, name)
    url = storage_url(settings.storage)
    runs = StudyRuns(open_tracker(options.tracking_uri), study, target, url)
    runs.open_parent(study_lock(settings.storage))
    done = budget_done(study, int(study.user_attrs.get("trials", settings.trials)))
    runs.update_parent(finished=done)
    report = StudyReport(target=target, study_name=name, trials_here=trained,
                         counted=len(counted_trials(study)), done=done)
    for trial in study.get_trials(deepcopy=False):
        report.states[trial.state.name] = report.states.get(trial.state.name, 0) + 1
    report.entry = export_best(study, target, url, settings.tuned_weights)
    if report.entry is not None:
        report.best_value = study.best_value
        report.best_params = dict(study.best_params)
    return report


def work_on_targets(named: list[tuple[TuneTarget, str]], settings: TuneSettings,
                    options: RunOptions, threads: Optional[int] = None) -> dict[str, int]:
    """This process's share of every (target, study name): {study name: trials trained here}."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    _quiet_optuna()
    from losses.plugins import load_plugins

    load_plugins(options.plugins)
    return {name: optimize_study(target, settings, options, name) for target, name in named}


def _quiet_optuna() -> None:
    import warnings

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def _work_on_executor(named, settings: TuneSettings, options: RunOptions,
                      executor) -> dict[str, int]:
    """Run ``work_on_targets`` as the executor's workers; {study name: trials trained}."""
    from benchmark.executors import LostCall

    workers = options.jobs or executor.slots()
    alone = executor.in_process and workers == 1
    child = RunOptions(**{**options.__dict__, "progress": options.progress and alone, "jobs": 1})
    totals: dict[str, int] = {}
    calls = [(named, settings, child)] * workers
    for _, outcome in executor.map_unordered(work_on_targets, calls):
        if isinstance(outcome, LostCall):  # its running trials go stale and are retried
            print(f"kdbench tune: a worker was lost: {outcome.reason}", file=sys.stderr)
            continue
        for name, n in outcome.items():
            totals[name] = totals.get(name, 0) + n
    return totals


def tune_losses(suite: SuiteConfig, selection: TargetFilter, settings: TuneSettings,
                options: RunOptions, *, epochs: Optional[int] = None,
                train_seed: Optional[int] = None) -> list[StudyReport]:
    """What ``kdbench tune`` does, as a library call (``kdbench validate --tune-trials`` uses it
    too): select the suite's targets, announce them, run every study to its budget (an existing
    study just continues), write the best weights to the tuned-weights file and print the closing
    table. The file is ``settings.tuned_weights``, else the suite's ``tuned_weights`` (where its
    ``weight: tuned`` rows look), else ``tuned_weights.yaml``. Bad input is a ``UserError``."""
    from studies.report import print_reports
    from studies.targets import select_targets

    if settings.tuned_weights is None:
        settings = dataclasses.replace(settings, tuned_weights=suite.tuned_weights)
    targets = select_targets(suite, selection, epochs=epochs, train_seed=train_seed)
    print(f"Tuning {len(targets)} loss(es) of suite '{suite.name}': {settings.trials} trials "
          f"each, {targets[0].base.recipe.epochs} epochs, space '{settings.space}', "
          f"pruner {settings.pruner}, sampler {settings.sampler} (seed {settings.seed}).",
          flush=True)
    reports = tune(suite, targets, settings, options)
    print_reports(reports, settings)
    return reports


def all_tuned(reports: list[StudyReport]) -> bool:
    """Whether there were studies and every one of them wrote a best weight."""
    return bool(reports) and all(r.entry is not None for r in reports)


def tune(suite, targets: list[TuneTarget], settings: TuneSettings,
         options: RunOptions) -> list[StudyReport]:
    """Train missing teachers, run every study to its budget, export and report."""
    _check_settings(settings)
    _quiet_optuna()
    options = with_absolute_paths(options)  # workers may run elsewhere (processes, Ray tasks)
    settings = dataclasses.replace(settings, storage=absolute_storage(settings.storage))
    _check_up_front(targets, settings, options)
    with open_executor(options) as executor:  # teachers and trials share one connection
        return _tune_on(suite, targets, settings, options, executor)


def _tune_on(suite, targets: list[TuneTarget], settings: TuneSettings, options: RunOptions,
             executor) -> list[StudyReport]:
    from studies.mlflow_runs import open_tracker
    from studies.targets import tuning_suite
    from studies.teachers import ensure_teachers

    named = [(t, study_name_for(t, settings, len(targets))) for t in targets]
    tracker = open_tracker(options.tracking_uri)
    failed = ensure_teachers(targets, tuning_suite(suite), options, tracker)
    for target, _ in named:
        if target.base.teacher_spec().config_hash in failed:
            print(f"kdbench tune: skipping {target.describe()}: its teacher failed to train.",
                  file=sys.stderr)
    named = [(t, n) for t, n in named if t.base.teacher_spec().config_hash not in failed]
    trained = _work_on_executor(named, settings, options, executor)
    return [finish_study(t, settings, options, name, trained.get(name, 0)) for t, name in named]


def _check_up_front(targets: list[TuneTarget], settings: TuneSettings,
                    options: RunOptions) -> None:
    """Everything that can fail without training, before a teacher trains: the study storage,
    the tracking store and the data sets (each a ``UserError`` naming it)."""
    from benchmark.data import load_splits
    from benchmark.tracking import Tracker
    from studies.storage import open_storage

    open_storage(settings.storage)
    Tracker(options.tracking_uri)
    for dataset, fraction, split_seed in {(t.base.dataset, t.base.val_fraction, t.base.split_seed)
                                          for t in targets}:
        load_splits(dataset, options.data_dir, val_fraction=fraction, split_seed=split_seed,
                    download=options.download)


def _check_settings(settings: TuneSettings) -> None:
    from benchmark.errors import user_error

    if settings.trials < 1:
        raise user_error(f"--trials must be at least 1, got {settings.trials}", "--trials",
                         "pass the number of trials each study should run, e.g. --trials 12")
    if settings.cohort_size < 1:
        raise user_error(f"--cohort-size must be at least 1, got {settings.cohort_size}",
                         "--cohort-size", "pass how many trials train together, e.g. 4")
