"""Each epoch is in MLflow exactly once across a crash, wherever the crash falls: the engine
checkpoints an epoch before logging it, and a resumed run logs the checkpointed epoch only if the
crash came in between (a node lost under Ray, a SIGKILL)."""

from __future__ import annotations

import shutil
import textwrap

import pytest
import torch

from benchmark.config import load_suite
from benchmark.engine import RunEnv, train_cohort
from benchmark.plan import PlanOptions, expand_suite
from benchmark.store import Store
from benchmark.tracking import Tracker

pytestmark = pytest.mark.slow

SUITE = textwrap.dedent("""
    name: once
    recipe: digits
    datasets: [digits]
    pairs:
      - {teacher: digits_cnn_large, student: digits_cnn_small}
    losses: [sp]
    seeds: [0]
""")


class Crash(BaseException):
    """Stands for the process dying (not an Exception: nothing in the engine catches it)."""


class CrashAfterLog(Tracker):
    """Dies right after logging epoch ``CRASH_EPOCH``."""

    def log_metrics(self, run_id, metrics, step):
        super().log_metrics(run_id, metrics, step)
        if step == CRASH_EPOCH:
            raise Crash()


CRASH_EPOCH = 2


def crash_after_checkpoint(monkeypatch):
    """Die right after epoch ``CRASH_EPOCH``'s checkpoint is written."""
    from benchmark.engine import Member

    original = Member.save

    def save(self):
        original(self)
        if self.epoch == CRASH_EPOCH:
            raise Crash()

    monkeypatch.setattr(Member, "save", save)


def steps(tracker: Tracker, run_id: str, key: str = "train_acc") -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in tracker.client.get_metric_history(run_id, key))


@pytest.mark.parametrize("crash_point", ["after_checkpoint", "after_log"])
def test_every_epoch_logged_exactly_once_across_a_crash(tmp_path, monkeypatch, crash_point):
    (tmp_path / "once.yaml").write_text(SUITE)
    [spec] = expand_suite(load_suite(str(tmp_path / "once.yaml")), PlanOptions(epochs=3))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    store = tmp_path / "store"
    [teacher] = train_cohort([spec.teacher_spec()], RunEnv(device=torch.device("cpu"),
                                                             store=store))
    assert teacher.status == "FINISHED"

    tracker = Tracker(uri)
    run_id = tracker.start_run("once", spec, {})
    env = dict(device=torch.device("cpu"), store=store, suite="once", run_ids={
        spec.config_hash: run_id})
    with monkeypatch.context() as patch:
        if crash_point == "after_checkpoint":
            crash_after_checkpoint(patch)
            crashing = tracker
        else:
            crashing = CrashAfterLog(uri)
        with pytest.raises(Crash):
            train_cohort([spec], RunEnv(tracker=crashing, **env))
    logged_before = [s for s, _ in steps(tracker, run_id)]
    assert logged_before == ([1] if crash_point == "after_checkpoint" else [1, 2])
    assert Store(store).checkpoint(spec.config_hash).exists()

    [resumed] = train_cohort([spec], RunEnv(tracker=tracker, **env))
    assert resumed.status == "FINISHED"
    logged = steps(tracker, run_id)
    assert [s for s, _ in logged] == [1, 2, 3]
    assert tracker.get_run(run_id).data.tags["kdbench.resumed_at_epoch"] == "2"

    # The same values as a run that never crashed (fresh store, same teacher weights).
    clean_store = tmp_path / "clean"
    shutil.copytree(Store(store).teachers_dir, Store(clean_store).teachers_dir)
    clean_id = tracker.start_run("once", spec, {})
    env.update(store=clean_store, run_ids={spec.config_hash: clean_id})
    [clean] = train_cohort([spec], RunEnv(tracker=tracker, **env))
    assert steps(tracker, clean_id) == logged
    assert clean.test_acc_last == resumed.test_acc_last
