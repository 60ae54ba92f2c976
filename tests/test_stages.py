"""Pre-training stages (AB, FT, FSP): what a stage trains, that it runs before the main epochs,
checkpointed and logged to MLflow exactly once, and that a run killed during its stage
(in-process crash or SIGKILL of the process) resumes to exactly an uninterrupted run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from benchmark.config import load_suite
from benchmark.engine import Member, RunEnv, train_cohort
from benchmark.plan import PlanOptions, expand_suite
from benchmark.store import Store
from benchmark.tracking import Tracker

pytestmark = pytest.mark.slow

SUITE = textwrap.dedent("""
    name: staged
    recipe: digits
    datasets: [digits]
    pairs:
      - {teacher: digits_cnn_large, student: digits_cnn_small}
    losses: [LOSSES]
    seeds: [0]
    hparams:
      ab: {pretrain_epochs: 3}
      ft: {pretrain_epochs: 3}
""")
EPOCHS, STAGE_EPOCHS = 2, 3


class Crash(BaseException):
    """Stands for the process dying (nothing in the engine catches it)."""


def specs(tmp_path, losses="ab", epochs=EPOCHS):
    path = tmp_path / "staged.yaml"
    path.write_text(SUITE.replace("LOSSES", losses))
    return expand_suite(load_suite(str(path)), PlanOptions(epochs=epochs))


def trained_teacher(spec, store):
    [teacher] = train_cohort([spec.teacher_spec()], RunEnv(device=torch.device("cpu"),
                                                           store=store))
    assert teacher.status == "FINISHED"


def history(tracker, run_id, key):
    return sorted((m.step, m.value) for m in tracker.client.get_metric_history(run_id, key))


def build_member(spec, store):
    import models
    from benchmark.data import load_splits
    from benchmark.teachers import TeacherStore

    data = load_splits("digits", None, val_fraction=spec.val_fraction)
    teacher, _ = TeacherStore(store).load(spec.teacher_spec(), 10, 1, torch.device("cpu"))
    shapes = {k: tuple(v.shape) for k, v in models.tap_info(teacher, (1, 8, 8)).items()}
    env = RunEnv(device=torch.device("cpu"), store=store)
    return Member(spec, data, shapes, env, teacher=teacher)


def test_stages_train_what_the_published_init_trains(tmp_path):
    ab, ft = specs(tmp_path, "ab, ft")
    store = tmp_path / "store"
    trained_teacher(ab, store)
    member = build_member(ab, store)
    trained = {id(p) for group in member.stage.optimizer.param_groups for p in group["params"]}
    term = member.loss.terms["ab"]
    assert {id(p) for p in term.connectors.parameters()} <= trained
    assert {id(p) for p in member.model.layer2.parameters()} <= trained
    assert not {id(p) for p in member.model.fc.parameters()} & trained  # the classifier waits
    main = {id(p) for group in member.optimizer.param_groups for p in group["params"]}
    assert not {id(p) for p in term.parameters()} & main  # AB is stage-only: CE afterwards
    member = build_member(ft, store)
    paraphraser = member.loss.terms["ft"].paraphraser
    assert [p for g in member.stage.optimizer.param_groups for p in g["params"]] == list(
        paraphraser.parameters())
    assert member.stage.optimizer.param_groups[0]["lr"] == ft.lr  # digits_cnn_small: run's lr


def test_stage_runs_first_is_logged_once_and_resumes_exactly_after_a_crash(tmp_path, monkeypatch):
    [spec] = specs(tmp_path)
    store, clean_store = tmp_path / "store", tmp_path / "clean"
    trained_teacher(spec, store)
    shutil.copytree(Store(store).teachers_dir, Store(clean_store).teachers_dir)
    tracker = Tracker(f"sqlite:///{tmp_path}/mlflow.db")

    run_id = tracker.start_run("staged", spec, {})
    env = dict(device=torch.device("cpu"), tracker=tracker, suite="staged")
    original = Member.save

    def save_then_die(self):
        original(self)
        if self.stage is not None and self.stage.epoch == 2:
            raise Crash()

    with monkeypatch.context() as patch:
        patch.setattr(Member, "save", save_then_die)
        with pytest.raises(Crash):
            train_cohort([spec], RunEnv(store=store, run_ids={spec.config_hash: run_id}, **env))
    assert [s for s, _ in history(tracker, run_id, "pretrain/ab")] == [1]  # died before logging 2
    assert history(tracker, run_id, "train_acc") == []
    [resumed] = train_cohort([spec], RunEnv(store=store, run_ids={spec.config_hash: run_id}, **env))
    assert resumed.status == "FINISHED"
    stage_log = history(tracker, run_id, "pretrain/ab")
    assert [s for s, _ in stage_log] == [1, 2, 3]
    assert [s for s, _ in history(tracker, run_id, "train_acc")] == [1, 2]

    clean_id = tracker.start_run("staged", spec, {})
    [clean] = train_cohort([spec], RunEnv(store=clean_store, run_ids={spec.config_hash: clean_id},
                                          **env))
    assert history(tracker, clean_id, "pretrain/ab") == stage_log
    assert history(tracker, clean_id, "train_acc") == history(tracker, run_id, "train_acc")
    assert clean.test_acc_last == resumed.test_acc_last


def test_sigkill_during_the_stage_then_resume_matches_uninterrupted(tmp_path):
    from benchmark.cli import main

    path = tmp_path / "staged.yaml"
    path.write_text(SUITE.replace("LOSSES", "ab").replace("pretrain_epochs: 3",
                                                          "pretrain_epochs: 6"))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
           "OMP_NUM_THREADS": str(torch.get_num_threads())}

    def cli(root):
        return ["run", str(path), "--epochs", str(EPOCHS), "--store", str(root / "store"),
                "--tracking-uri", f"sqlite:///{root}/mlflow.db", "--no-progress",
                "--no-leaderboard"]

    reference, victim = tmp_path / "ref", tmp_path / "victim"
    reference.mkdir(), victim.mkdir()
    assert main(cli(reference)) == 0
    [spec] = expand_suite(load_suite(str(path)), PlanOptions(epochs=EPOCHS))
    checkpoint = Store(victim / "store").checkpoint(spec.config_hash)
    proc = subprocess.Popen([sys.executable, "-m", "benchmark", *cli(victim)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not checkpoint.exists():
        time.sleep(0.01)  # the first stage epoch's checkpoint: the stage is under way
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = torch.load(checkpoint, weights_only=True)
    assert state["epoch"] == 0 and 1 <= state["stage"]["epoch"] < 6  # killed inside the stage

    assert main(cli(victim)) == 0

    def final(root):
        tracker = Tracker(f"sqlite:///{root}/mlflow.db")
        [run] = [r for r in tracker.search(tracker.experiment_id("staged", create=False))
                 if r.data.tags["loss"] == "ab" and r.info.status == "FINISHED"]
        keys = ("pretrain/ab", "train_acc", "test_acc")
        return {k: history(tracker, run.info.run_id, k) for k in keys}

    assert final(victim) == final(reference)


def test_modifier_and_warm_up_runs_resume_exactly_after_a_crash(tmp_path, monkeypatch):
    """CTKD's learnable temperature and curriculum, and DKD's warm-up, across a crash."""
    runs = specs(tmp_path, "kd@ctkd, dkd@ls", epochs=3)
    store, clean_store = tmp_path / "store", tmp_path / "clean"
    trained_teacher(runs[0], store)
    shutil.copytree(Store(store).teachers_dir, Store(clean_store).teachers_dir)
    env = dict(device=torch.device("cpu"))
    original = Member.save

    def save_then_die(self):
        original(self)
        if self.epoch == 2:
            raise Crash()

    with monkeypatch.context() as patch:
        patch.setattr(Member, "save", save_then_die)
        with pytest.raises(Crash):
            train_cohort(runs, RunEnv(store=store, **env))
    resumed = train_cohort(runs, RunEnv(store=store, **env))
    clean = train_cohort(runs, RunEnv(store=clean_store, **env))
    assert [r.status for r in resumed] == ["FINISHED", "FINISHED"]
    assert [r.test_acc_last for r in resumed] == [r.test_acc_last for r in clean]
    from safetensors.torch import load_file

    for a, b in zip(resumed, clean):
        weights_a, weights_b = load_file(a.weights_path), load_file(b.weights_path)
        assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
