"""The runner: a suite's plan -> teachers -> cohorts -> MLflow, surviving interruptions.

It skips runs already FINISHED in MLflow (matched by config hash), trains missing teachers
first, resumes interrupted runs from their epoch checkpoints, keeps going past a failed run
(NaN/inf loss or an exception: that run is FAILED in MLflow with the reason) and reports a summary
at the end. Cohorts run on an executor (:mod:`benchmark.executors`): this process, ``jobs``
local processes, or Ray tasks on a cluster; the runs and their config hashes are the same on each.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

import torch

from benchmark.config import SuiteConfig
from benchmark.engine import RunEnv, RunResult, train_cohort
from benchmark.executors import DEFAULT_MAX_RETRIES
from benchmark.plan import (Cohort, PlanOptions, RunSpec, expand_suite, group_cohorts,
                            teacher_specs)
from benchmark.records import Metric, Status, Tag

SKIPPED = "SKIPPED"  # a RunResult status: leased by, or finished by, another driver
from benchmark.checkpoint import remove_checkpoint
from benchmark.store import DEFAULT_STORE, Store


@dataclass
class RunOptions:
    """Where the runs execute and where their outputs go."""

    device: str = "auto"
    data_dir: Optional[str] = None
    download: bool = False
    store: str = DEFAULT_STORE
    tracking_uri: Optional[str] = None
    jobs: int = 1
    progress: bool = True
    plugins: list[str] = field(default_factory=list)
    executor: str = "local"
    address: Optional[str] = None
    max_retries: int = DEFAULT_MAX_RETRIES


@dataclass
class Plan:
    """What a ``kdbench run`` will do, before it does it."""

    suite: SuiteConfig
    runs: list[RunSpec]
    done: list[RunSpec]
    todo: list[RunSpec]
    teachers_to_train: list[RunSpec]
    cohorts: list[Cohort]


@dataclass
class Outcome:
    """What a ``kdbench run`` did."""

    plan: Plan
    results: list[RunResult]

    @property
    def failed(self) -> list[RunResult]:
        return [r for r in self.results if r.status not in ("FINISHED", SKIPPED)]

    @property
    def skipped(self) -> list[RunResult]:
        """Runs another driver was training (or finished) when this one reached them."""
        return [r for r in self.results if r.status == SKIPPED]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        from benchmark.errors import UserError

        raise UserError(f"--device {name} was asked for, but torch sees no CUDA device on this "
                        "machine. Use --device cpu (or auto), or run on a machine with a GPU.")
    try:
        return torch.device(name)
    except RuntimeError:
        from benchmark.errors import UserError

        raise UserError(f"--device {name!r} is not a device torch knows. Use auto, cpu, cuda or "
                        "cuda:N (e.g. --device cuda:0).") from None


def make_plan(suite: SuiteConfig, plan_options: PlanOptions, options: RunOptions,
              tracker) -> Plan:
    from benchmark.teachers import TeacherStore

    from benchmark.records import select

    runs = expand_suite(suite, plan_options)
    counted = select(tracker.records(suite.name)).counted  # the one rule: what counts is done
    planned = {r.config_hash for r in runs}
    finished = {h for h, r in counted.items()
                if h in planned and _weights_whole(r, Store(options.store))}
    done = [r for r in runs if r.config_hash in finished]
    todo = [r for r in runs if r.config_hash not in finished]
    stored = TeacherStore(options.store)
    teachers = [t for t in teacher_specs(todo) if not stored.has(t)]
    return Plan(suite, runs, done, todo, teachers, group_cohorts(todo))


def _weights_whole(record, store: Store) -> bool:
    """False for a finished student whose weights file in this store is damaged: it is moved
    aside and the run is trained again (a rerun of the same configuration). A missing file (a
    store deleted on purpose) leaves the finished run as it is."""
    from benchmark.checkpoint import quarantine, safetensors_intact

    recorded = record.tag(Tag.WEIGHTS_PATH)
    if record.role != "student" or not recorded:
        return True
    path = store.relocate(recorded)
    if not path.exists() or safetensors_intact(path):
        return True
    quarantine(path, "not a whole safetensors file; the run is trained again")
    return False


def describe_plan(plan: Plan) -> str:
    """The ``--dry-run`` text: runs, cohorts, what is already done, and the cost."""
    lines = [f"Suite '{plan.suite.name}': {len(plan.runs)} run(s), {len(plan.done)} already "
             f"finished, {len(plan.todo)} to train in {len(plan.cohorts)} cohort(s); "
             f"{len(plan.teachers_to_train)} teacher(s) to train first."]
    student_epochs = sum(r.recipe.epochs for r in plan.todo)
    teacher_epochs = sum(t.recipe.epochs for t in plan.teachers_to_train)
    shared = sum(c.runs[0].recipe.epochs for c in plan.cohorts)
    lines.append(f"Cost: {student_epochs} student epochs, {teacher_epochs} teacher-training "
                 f"epochs, {shared} epochs of teacher forwards (instead of {student_epochs} "
                 "without cohorts).")
    for t in plan.teachers_to_train:
        lines.append(f"  teacher  {t.dataset:10s} {t.student:16s} seed {t.seed} "
                     f"({t.recipe.epochs} epochs) [{t.config_hash}]")
    for cohort in plan.cohorts:
        lines.append(f"  cohort   {cohort.describe()}")
        for r in cohort.runs:
            weights = ", ".join(f"{n}={w:g}" for n, w in r.terms)
            lines.append(f"    {r.student:16s} {r.loss:10s} [{weights}] {r.recipe.epochs} ep"
                         f"{' (scaled)' if r.scaled else ''}  {r.config_hash}")
    return "\n".join(lines)


def check_datasets(plan: Plan, options: RunOptions) -> None:
    """Fail early (exit 2) when a data set is missing, before any training starts."""
    from benchmark.data import load_splits

    seen = set()
    for spec in plan.todo + plan.teachers_to_train:
        key = (spec.dataset, spec.val_fraction, spec.split_seed)
        if key not in seen:
            seen.add(key)
            load_splits(spec.dataset, options.data_dir, val_fraction=spec.val_fraction,
                        split_seed=spec.split_seed, download=options.download)


def _assign_run_ids(tracker, suite: str, specs: list[RunSpec], device: str,
                    store: str) -> dict[str, str]:
    """Reuse the MLflow run of an interrupted run; create one for a new (or failed) run."""
    from benchmark.records import resumable

    existing = tracker.runs_by_hash(suite)
    ids = {}
    for spec in specs:
        interrupted = resumable(existing.get(spec.config_hash, []))
        if interrupted is not None:
            ids[spec.config_hash] = interrupted.run_id
            tracker.reopen_run(interrupted.run_id)
        else:
            ids[spec.config_hash] = tracker.start_run(
                suite, spec, {Tag.DEVICE: device, **_teacher_identity(spec, store)})
    return ids


def _teacher_identity(spec: RunSpec, store: str) -> dict[str, str]:
    """The sha256 of the teacher weights a student run distils from (its spec names the
    teacher's training run; this names the exact file)."""
    from benchmark.teachers import TeacherStore

    if spec.teacher is None:
        return {}
    teachers = TeacherStore(store)
    teacher = spec.teacher_spec()
    if not teachers.has(teacher):
        return {}
    return {Tag.TEACHER_SHA256: teachers.metadata(teacher).get("sha256", "")}


def _finalise(tracker, result: RunResult) -> None:
    if result.run_id is None:
        return
    if result.status == Status.FINISHED:
        tracker.log_metrics(result.run_id, {
            Metric.TEST_ACC_LAST: result.test_acc_last, Metric.TEST_ACC_BEST: result.test_acc_best,
            Metric.BEST_EPOCH: result.best_epoch, Metric.WALL_TIME_S: result.wall_time_s,
            Metric.TEST_TOP5_LAST: result.test_top5_last,
        }, step=result.spec.recipe.epochs)
        if result.weights_path:
            tracker.set_tags(result.run_id, {Tag.WEIGHTS_PATH: result.weights_path})
        tracker.finish(result.run_id, Status.FINISHED)
    else:
        tracker.finish(result.run_id, Status.FAILED, reason=result.reason)


def run_cohort_job(specs: list[RunSpec], suite: str, options: RunOptions,
                   threads: Optional[int] = None) -> list[RunResult]:
    """Train one cohort and record it in MLflow (the unit of work of ``--jobs``).

    Each run is leased first (:mod:`benchmark.leases`): a run another live driver holds, or one
    that finished meanwhile, is SKIPPED. SIGINT/SIGTERM mark the runs under way KILLED with the
    reason and release their leases before the interrupt goes on up."""
    import multiprocessing

    from benchmark.interrupts import handling_signals
    from benchmark.leases import Leases
    from benchmark.tracking import Tracker
    from losses.plugins import load_plugins

    if threads:
        torch.set_num_threads(threads)
    load_plugins(options.plugins)  # a worker process or Ray task registers the plugins too
    device = resolve_device(options.device)
    tracker = Tracker(options.tracking_uri)
    in_driver = multiprocessing.parent_process() is None
    with handling_signals(sigint=in_driver), Leases(options.store) as leases:
        mine, skipped = _claim(specs, suite, options, tracker, leases)
        return skipped + _train_claimed(mine, suite, options, tracker, device)


def _claim(specs: list[RunSpec], suite: str, options: RunOptions, tracker,
           leases) -> tuple[list[RunSpec], list[RunResult]]:
    """Lease every run of the cohort that is still to do; the others are SKIPPED with why."""
    from benchmark.records import select
    from benchmark.teachers import TeacherStore

    mine, skipped = [], []
    for spec in specs:
        holder = leases.acquire(spec.config_hash)
        if holder is not None:
            skipped.append(RunResult(spec, SKIPPED, reason=f"being trained by {holder.describe()}"))
        else:
            mine.append(spec)
    if not mine:
        return mine, skipped
    counted = select(tracker.records(suite)).counted
    stored, store = TeacherStore(options.store), Store(options.store)

    def finished_elsewhere(spec: RunSpec) -> bool:  # counted now, with its weights in place
        if spec.role == "teacher":
            return stored.has(spec)
        record = counted.get(spec.config_hash)
        return record is not None and store.relocate(record.tag(Tag.WEIGHTS_PATH)).is_file()

    done = [s for s in mine if finished_elsewhere(s)]
    for spec in done:  # finished by another driver between our plan and our lease
        leases.release(spec.config_hash)
        skipped.append(RunResult(spec, SKIPPED, reason="finished by another driver"))
    return [s for s in mine if s not in done], skipped


def _train_claimed(specs: list[RunSpec], suite: str, options: RunOptions, tracker,
                   device) -> list[RunResult]:
    from benchmark.engine import _reason
    from benchmark.interrupts import signal_name

    if not specs:
        return []
    run_ids = _assign_run_ids(tracker, suite, specs, str(device), options.store)
    env = RunEnv(device=device, store=Path(options.store),
                 data_dir=Path(options.data_dir) if options.data_dir else None,
                 download=options.download, tracker=tracker, suite=suite,
                 progress=options.progress, run_ids=run_ids)
    try:
        results = train_cohort(specs, env)
    except KeyboardInterrupt as err:  # SIGINT or SIGTERM: close the runs, keep the checkpoints
        _mark_killed(tracker, run_ids.values(),
                     f"interrupted by {signal_name(err)}; the next run resumes it")
        raise
    except Exception as err:  # the cohort could not even start: every run fails with the reason
        results = [RunResult(s, "FAILED", reason=_reason(err), run_id=run_ids[s.config_hash])
                   for s in specs]
    for result in results:
        _finalise(tracker, result)
        if result.status == "FINISHED":
            remove_checkpoint(Store(options.store).checkpoint(result.spec.config_hash))
    return results


def _mark_killed(tracker, run_ids, reason: str) -> None:
    """KILLED with the reason; a store that cannot be written now (a second interrupt, a lost
    server) leaves the run RUNNING: its lease expires and the next driver resumes it anyway."""
    from benchmark.interrupts import deferred

    with deferred():  # a second Ctrl-C waits until the runs are closed
        for run_id in run_ids:
            try:
                tracker.finish(run_id, Status.KILLED, reason=reason)
            except Exception as err:
                print(f"kdbench: could not mark run {run_id} KILLED ({err}); the next run "
                      "resumes it all the same.", file=sys.stderr)


def record_stored_teachers(plan: Plan, options: RunOptions, tracker) -> None:
    """Give each teacher that came from the store a FINISHED run in this suite's experiment."""
    from benchmark.teachers import TeacherStore

    from benchmark.locks import exclusive_lock

    with exclusive_lock(Store(options.store).lock("record-teachers")):  # one driver at a time
        _record_stored_teachers(plan, options, tracker)


def _record_stored_teachers(plan: Plan, options: RunOptions, tracker) -> None:
    from benchmark.leases import Leases
    from benchmark.records import resumable, select
    from benchmark.teachers import TeacherStore

    store = TeacherStore(options.store)
    records = tracker.records(plan.suite.name)
    counted = select(records).counted
    existing = tracker.runs_by_hash(plan.suite.name)
    leases = Leases(options.store)
    for spec in teacher_specs(plan.runs):
        spec = spec.model_copy(update={"suite": plan.suite.name})
        if not store.has(spec) or spec.config_hash in counted:
            continue
        if leases.holder(spec.config_hash) is not None:
            continue  # its trainer (another driver) is still recording it
        meta = store.metadata(spec)
        unfinished = resumable(existing.get(spec.config_hash, []))
        if unfinished is not None:  # trained and stored, but interrupted before MLflow heard
            run_id = unfinished.run_id
        else:
            run_id = tracker.start_run(plan.suite.name, spec, {Tag.SOURCE: meta["source"],
                                                                Tag.DEVICE: "store"})
        tracker.log_metrics(run_id, {Metric.TEST_ACC_LAST: meta["test_acc"],
                                     Metric.TEST_ACC: meta["test_acc"]}, step=spec.recipe.epochs)
        tracker.set_tags(run_id, {Tag.WEIGHTS_PATH: str(store.weights_path(spec)),
                                  Tag.SHA256: meta["sha256"]})
        tracker.finish(run_id, Status.FINISHED)


def _dispatch(batches: list[list[RunSpec]], suite: str, options: RunOptions, executor,
              label: str) -> list[RunResult]:
    """Train each batch (a cohort, or one teacher) on the executor, with a progress bar."""
    from tqdm.auto import tqdm

    from benchmark.executors import LostCall

    results: list[RunResult] = []
    if not batches:
        return results
    bar = tqdm(total=sum(len(b) for b in batches), desc=label, unit="run",
               disable=not options.progress, dynamic_ncols=True)
    child = RunOptions(**{**options.__dict__,
                          "progress": options.progress and executor.in_process})
    calls = [(specs, suite, child) for specs in batches]
    for index, outcome in executor.map_unordered(run_cohort_job, calls):
        if isinstance(outcome, LostCall):
            outcome = _lost_cohort(batches[index], suite, options, outcome.reason)
        results += outcome
        bar.update(len(batches[index]))
        bar.set_postfix(failed=sum(r.status not in ("FINISHED", SKIPPED) for r in results))
    bar.close()
    return results


def _lost_cohort(specs: list[RunSpec], suite: str, options: RunOptions,
                 reason: str) -> list[RunResult]:
    """A cohort whose task never came back: its runs are KILLED in MLflow (a rerun resumes them
    from their checkpoints) and FAILED in this run's summary."""
    from benchmark.tracking import Tracker

    from benchmark.leases import Leases

    tracker = Tracker(options.tracking_uri)
    existing = tracker.runs_by_hash(suite)
    leases = Leases(options.store)
    results = []
    for spec in specs:
        run_id = None
        holder = leases.holder(spec.config_hash)
        for run in existing.get(spec.config_hash, []):
            taken_over = holder is not None and (run.tag(Tag.HOST), run.tag(Tag.PID)) != (
                holder.host, str(holder.pid))
            if run.status == Status.RUNNING and not taken_over:
                run_id = run.run_id
                tracker.finish(run_id, Status.KILLED, reason=reason)
        results.append(RunResult(spec, "FAILED", reason=reason, run_id=run_id))
    return results


def with_absolute_paths(options: RunOptions) -> RunOptions:
    """The options with every local path absolute (store, data, plugins, a SQLite or file MLflow
    store), so worker processes and Ray tasks in other directories, or on other nodes sharing the
    file system, resolve them alike."""
    import dataclasses

    from benchmark.tracking import absolute_tracking_uri
    from losses.plugins import absolute_spec

    return dataclasses.replace(
        options, store=str(Path(options.store).resolve()),
        data_dir=str(Path(options.data_dir).resolve()) if options.data_dir else None,
        tracking_uri=absolute_tracking_uri(options.tracking_uri),
        plugins=[absolute_spec(p) for p in options.plugins])


@contextlib.contextmanager
def open_executor(options: RunOptions) -> Iterator:
    """The executor ``options`` names, connected for the block."""
    from benchmark.executors import make_executor

    with make_executor(options) as executor:
        executor.check_options(options)
        yield executor


def execute(plan: Plan, options: RunOptions, tracker) -> Outcome:
    """Train the plan's teachers, then its cohorts; never raises for a failed run."""
    from benchmark.leases import Leases

    check_datasets(plan, options)
    options = with_absolute_paths(options)
    with open_executor(options) as executor:
        outcome = _execute_on(plan, options, tracker, executor)
    Leases(options.store).prune()  # a killed driver's leases, once nobody needs them
    return outcome


def _execute_on(plan: Plan, options: RunOptions, tracker, executor) -> Outcome:
    from benchmark.teachers import TeacherStore

    suite = plan.suite.name
    teachers = [t.model_copy(update={"suite": suite}) for t in plan.teachers_to_train]
    results = _train_teachers(teachers, suite, options, executor)
    stored = TeacherStore(options.store)
    missing = {t.config_hash for t in teachers if not stored.has(t)}
    record_stored_teachers(plan, options, tracker)
    runnable, blocked = [], []
    for cohort in plan.cohorts:
        t_hash = cohort.runs[0].teacher_spec().config_hash
        (blocked if t_hash in missing else runnable).append(cohort)
    for cohort in blocked:
        results += [RunResult(s, "FAILED", reason="its teacher failed to train")
                    for s in cohort.runs]
    results += _dispatch([c.runs for c in runnable], suite, options, executor, "runs")
    return Outcome(plan, results)


def _train_teachers(teachers: list[RunSpec], suite: str, options: RunOptions,
                    executor) -> list[RunResult]:
    """Train the missing teachers; one that another driver is training is waited for (its
    students need it), and taken over if that driver dies."""
    import time

    from benchmark.leases import Leases, lease_ttl
    from benchmark.teachers import TeacherStore

    results = _dispatch([[t] for t in teachers], suite, options, executor, "teachers")
    waiting = [r.spec for r in results if r.status == SKIPPED]
    results = [r for r in results if r.status != SKIPPED]
    stored, leases = TeacherStore(options.store), Leases(options.store)
    while waiting:
        time.sleep(min(2.0, lease_ttl() / 4))
        waiting = [t for t in waiting if not stored.has(t)]
        orphaned = [t for t in waiting if leases.holder(t.config_hash) is None]
        if orphaned:  # its trainer died (or failed): train it here, resuming its checkpoint
            retried = _dispatch([[t] for t in orphaned], suite, options, executor, "teachers")
            results += [r for r in retried if r.status != SKIPPED]
            waiting = [t for t in waiting if t not in orphaned] + \
                [r.spec for r in retried if r.status == SKIPPED]
    return results


def summary_lines(outcome: Outcome) -> list[str]:
    """The closing summary: counts, and every failed run with its reason."""
    finished = [r for r in outcome.results if r.status == "FINISHED"]
    lines = [f"{len(finished)} run(s) finished, {len(outcome.failed)} failed, "
             f"{len(outcome.plan.done)} skipped as already finished"
             + (f", {len(outcome.skipped)} left to other drivers." if outcome.skipped else ".")]
    for r in outcome.skipped:
        lines.append(f"  SKIPPED {r.spec.role} {r.spec.student} {r.spec.loss} seed "
                     f"{r.spec.seed}: {r.reason}")
    for r in outcome.failed:
        lines.append(f"  FAILED {r.spec.role} {r.spec.student} {r.spec.loss} seed {r.spec.seed}:"
                     f" {r.reason}")
    return lines


def print_summary(outcome: Outcome, stream=None) -> None:
    print("\n".join(summary_lines(outcome)), file=stream or sys.stdout)
