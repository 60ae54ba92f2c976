"""``kdbench tune`` end to end on digits (tiny: 3 epochs, 2-4 trials): the objective never
touches the test split, a pruner stops a trial early, MLflow holds the study's parent run and
nested trial runs, a suite with ``weight: tuned`` picks up the tuned value, two processes on one
storage complete exactly N trials together, and a study whose process is SIGKILLed continues on
restart (the dead trial is retried from its checkpoint, the total stays N)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from benchmark.cli import main
from benchmark.config import load_suite
from benchmark.runner import RunOptions
from benchmark.store import Store
from studies.targets import TargetFilter, select_targets, tuning_suite
from studies.tuner import TuneSettings, tune

pytestmark = pytest.mark.slow
EPOCHS = 3
REPO = Path(__file__).resolve().parents[1]
SUITE = """
name: tunetest
recipe: digits
datasets: [digits]
pairs:
  - {teacher: digits_cnn_large, student: digits_cnn_small}
losses: [student, sp, kd]
seeds: [0]
"""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A folder with the suite, and the study teacher (3 epochs) already in the store.

    Under pytest-xdist the workers share one folder of this session (every test uses its own
    study names), so the teacher is trained once."""
    from studies.mlflow_runs import open_tracker
    from studies.storage import exclusive_lock
    from studies.teachers import ensure_teachers

    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = tmp_path_factory.getbasetemp().parent / "studies-tune"
    else:
        root = tmp_path_factory.mktemp("tune")
    with exclusive_lock(root / "setup.lock"):
        (root / "tunetest.yaml").write_text(textwrap.dedent(SUITE))
        suite = load_suite(str(root / "tunetest.yaml"))
        targets = select_targets(suite, TargetFilter(losses=["sp"]), epochs=EPOCHS)
        options = run_options(root)
        assert ensure_teachers(targets, tuning_suite(suite), options,
                               open_tracker(options.tracking_uri)) == set()
    return root


def run_options(root: Path) -> RunOptions:
    return RunOptions(device="cpu", store=str(root / "store"),
                      tracking_uri=f"sqlite:///{root}/mlflow.db", progress=False)


def cli_args(root: Path, storage: str, study: str, trials: int, *extra: str) -> list[str]:
    return ["tune", str(root / "tunetest.yaml"), "--loss", "sp", "--trials", str(trials),
            "--epochs", str(EPOCHS), "--cohort-size", "1", "--pruner", "none",
            "--storage", storage, "--study-name", study, "--store", str(root / "store"),
            "--tracking-uri", f"sqlite:///{root}/mlflow.db", "--tuned-weights",
            str(root / f"{study}.yaml"), "--no-progress", "--device", "cpu", *extra]


def spawn(root: Path, args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "benchmark.cli", *args], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def mlflow_runs(root: Path) -> list:
    from benchmark.tracking import Tracker

    tracker = Tracker(f"sqlite:///{root}/mlflow.db")
    exp = tracker.experiment_id("tunetest-tune", create=False)
    return tracker.client.search_runs([exp], max_results=1000)


class PoisonedSplit:
    """Stands in for the test split: records any access."""

    def __init__(self, log: list):
        object.__setattr__(self, "_log", log)

    def __getattr__(self, name):
        self._log.append(name)
        raise AssertionError(f"the objective touched the test split ({name})")

    def __len__(self):
        self._log.append("len")
        raise AssertionError("the objective touched the test split (len)")


def test_objective_sees_only_train_and_val_and_mlflow_and_tuned_weights(workdir, monkeypatch):
    import benchmark.data as data

    touched, seen = [], []
    real = data.load_splits

    def guarded(name, data_dir, **kw):
        splits = real(name, data_dir, **kw)
        seen.append((kw.get("val_fraction"), len(splits.train), len(splits.val)))
        return type(splits)(train=splits.train, val=splits.val, test=PoisonedSplit(touched),
                            info=splits.info)

    monkeypatch.setattr(data, "load_splits", guarded)
    suite = load_suite(str(workdir / "tunetest.yaml"))
    targets = select_targets(suite, TargetFilter(losses=["sp"]), epochs=EPOCHS)
    tuned = workdir / "tuned.yaml"
    settings = TuneSettings(trials=3, cohort_size=3, pruner="none", seed=1,
                            storage=f"sqlite:///{workdir}/inproc.db", study_name="inproc",
                            tuned_weights=str(tuned))
    (report,) = tune(suite, targets, settings, run_options(workdir))
    assert touched == []
    full_pool = len(real("digits", None, val_fraction=0).train)
    # Every load (the up-front check, then the one cohort) holds the same val split out.
    assert set(seen) == {(0.1, full_pool - seen[0][2], seen[0][2])}
    assert seen[0][2] == pytest.approx(0.1 * full_pool, abs=10)
    assert report.states == {"COMPLETE": 3} and report.done

    study = optuna.load_study(study_name="inproc", storage=f"sqlite:///{workdir}/inproc.db")
    assert study.user_attrs["trials"] == 3 and study.user_attrs["epochs"] == EPOCHS
    for trial in study.trials:
        assert sorted(trial.intermediate_values) == [1, 2, 3]
        assert trial.value == trial.intermediate_values[3]  # the last epoch's val_acc

    runs = mlflow_runs(workdir)
    parent = next(r for r in runs if r.data.tags.get("optuna.study") == "inproc"
                  and r.data.tags["kdbench.role"] == "study")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 3 and {r.info.status for r in children} == {"FINISHED"}
    assert {r.data.tags["trial_state"] for r in children} == {"complete"}
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["best_val_acc"] == pytest.approx(study.best_value)
    assert parent.data.metrics["best.weight.sp"] == pytest.approx(study.best_params["weight.sp"])
    child = children[0]
    assert float(child.data.params["weight.sp"]) in [t.params["weight.sp"] for t in study.trials]
    assert "test_acc" not in child.data.metrics
    from benchmark.tracking import Tracker

    history = Tracker(f"sqlite:///{workdir}/mlflow.db").client.get_metric_history(
        child.info.run_id, "val_acc")
    assert sorted(m.step for m in history) == [1, 2, 3]

    tuned_suite = workdir / "uses_tuned.yaml"
    tuned_suite.write_text(textwrap.dedent(f"""
        name: usestuned
        recipe: digits
        datasets: [digits]
        pairs:
          - {{teacher: digits_cnn_large, student: digits_cnn_small}}
        losses:
          - {{label: sp, terms: {{ce: 1, sp: tuned}}}}
        seeds: [0]
        tuned_weights: {tuned}
    """))
    from benchmark.plan import expand_suite

    (spec,) = expand_suite(load_suite(str(tuned_suite)))
    assert spec.term_weights["sp"] == pytest.approx(study.best_params["weight.sp"])


class PruneAfterFirstEpoch(optuna.pruners.BasePruner):
    def prune(self, study, trial) -> bool:
        return trial.last_step is not None and trial.last_step >= 1


def test_pruner_stops_trials_early(workdir):
    suite = load_suite(str(workdir / "tunetest.yaml"))
    targets = select_targets(suite, TargetFilter(losses=["kd"]), epochs=EPOCHS)
    settings = TuneSettings(trials=2, cohort_size=2, storage=f"sqlite:///{workdir}/prune.db",
                            study_name="pruned", pruner_object=PruneAfterFirstEpoch(),
                            tuned_weights=str(workdir / "pruned.yaml"))
    (report,) = tune(suite, targets, settings, run_options(workdir))
    assert report.states == {"PRUNED": 2} and report.entry is None
    study = optuna.load_study(study_name="pruned", storage=f"sqlite:///{workdir}/prune.db")
    assert [sorted(t.intermediate_values) for t in study.trials] == [[1], [1]]
    children = [r for r in mlflow_runs(workdir) if r.data.tags.get("optuna.study") == "pruned"
                and r.data.tags["kdbench.role"] == "trial"]
    assert {(r.info.status, r.data.tags["trial_state"]) for r in children} == {("KILLED",
                                                                                "pruned")}
    from studies.space import apply_params, search_space

    for trial in study.trials:  # a told trial leaves no checkpoint behind
        spec = apply_params(targets[0].base, search_space(["kd"]), trial.params)
        assert not Store(workdir / "store").checkpoint(spec.config_hash).exists()


def test_two_processes_on_one_storage_complete_exactly_n_trials(workdir, capsys):
    storage = f"sqlite:///{workdir}/shared.db"
    other = spawn(workdir, cli_args(workdir, storage, "shared", 4))  # a second process ...
    _wait_for_first_trial(other, storage, "shared")
    assert main(cli_args(workdir, storage, "shared", 4)) == 0  # ... and this one, together
    output = other.communicate(timeout=300)[0]
    assert other.returncode == 0, output
    study = optuna.load_study(study_name="shared", storage=storage)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 4
    owners = {t.user_attrs["kdbench.owner"] for t in study.trials}
    assert owners == {f"{os.uname().nodename}:{pid}" for pid in (other.pid, os.getpid())}


def _wait_for_first_trial(proc: subprocess.Popen, storage: str, name: str) -> None:
    deadline = time.time() + 240
    while time.time() < deadline:
        assert proc.poll() is None, proc.stdout.read()
        try:
            if optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False):
                return
        except KeyError:  # the study does not exist yet
            pass
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("the other process never asked a trial")


def test_killed_study_continues_on_restart(workdir, capsys):
    storage = f"journal:{workdir}/killed.log"
    proc = spawn(workdir, cli_args(workdir, storage, "killed", 3))
    first_value, victim = _kill_during_second_trial(proc, storage)
    checkpoint = Store(workdir / "store").checkpoint(victim["hash"])
    assert checkpoint.exists()  # the dead trial left an epoch checkpoint behind

    assert main(cli_args(workdir, storage, "killed", 3)) == 0
    from studies.storage import open_storage

    study = optuna.load_study(study_name="killed", storage=open_storage(storage))
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE,
                      TrialState.COMPLETE]
    assert study.trials[0].value == first_value  # finished work is kept, not redone
    retry = study.trials[2]
    assert retry.user_attrs["kdbench.retry_of"] == 1 and retry.params == victim["params"]
    assert sorted(retry.intermediate_values) == [1, 2, 3]
    assert not checkpoint.exists()
    report = capsys.readouterr().out
    assert "3/0/1" in report  # complete/pruned/failed: N = 3 counted, the dead one retried
    runs = [r for r in mlflow_runs(workdir) if r.data.tags.get("optuna.study") == "killed"
            and r.data.tags["kdbench.role"] == "trial"]
    dead = [r for r in runs if r.info.status == "FAILED"]
    assert len(dead) == 1 and "process stopped" in dead[0].data.tags["failure_reason"]


def _kill_during_second_trial(proc: subprocess.Popen, storage: str):
    """SIGKILL ``proc`` once trial 0 is complete and trial 1 has finished an epoch."""
    from studies.storage import open_storage

    deadline = time.time() + 240
    while time.time() < deadline:
        assert proc.poll() is None, proc.stdout.read()
        try:
            study = optuna.load_study(study_name="killed", storage=open_storage(storage))
            trials = study.get_trials(deepcopy=False)
        except (KeyError, ValueError):  # no study yet, or a log line being written right now
            trials = []
        if (len(trials) >= 2 and trials[0].state == TrialState.COMPLETE
                and trials[1].state == TrialState.RUNNING and trials[1].intermediate_values):
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            from studies.space import apply_params, search_space

            suite = load_suite(str(Path(proc.args[4])))
            target = select_targets(suite, TargetFilter(losses=["sp"]), epochs=EPOCHS)[0]
            spec = apply_params(target.base, search_space(["sp"]), trials[1].params)
            return trials[0].value, {"params": trials[1].params, "hash": spec.config_hash}
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("the study never reached its second trial")
