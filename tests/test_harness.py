"""The harness end to end on digits: cohorts equal separate runs bit for bit on CPU, MLflow holds
every run with the schema's params/tags/metrics, a finished suite trains nothing the second
time, a NaN run is FAILED while the others finish, and a run killed with SIGKILL mid-epoch
resumes to exactly the metrics of an uninterrupted run."""

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

from benchmark.cli import main
from benchmark.store import Store

pytestmark = pytest.mark.slow

SUITE = """
name: {name}
recipe: digits
datasets: [digits]
pairs:
  - {{teacher: digits_cnn_large, student: digits_cnn_small}}
losses: [{losses}]
seeds: [{seeds}]
hparams:
  crd: {{K: 64}}
"""

NAN_PLUGIN = '''
"""A loss that is NaN from the first step (for the failure-handling test)."""
import torch
from losses import DistillLoss, register_loss


@register_loss("nan_after")
class NanAfter(DistillLoss):
    default_weight = 1.0

    def __init__(self, student_taps, teacher_taps, context=None, **config):
        super().__init__(student_taps, teacher_taps, context, **config)
        self.use_student_tap("logits")

    def forward(self, student, teacher, labels=None, indices=None):
        return student["logits"].sum() * float("nan")
'''


def write_suite(tmp_path: Path, name: str, losses: str, seeds: str = "0") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(textwrap.dedent(SUITE.format(name=name, losses=losses, seeds=seeds)))
    return path


def cli(tmp_path: Path, *args: str) -> list[str]:
    return [*args, "--store", str(tmp_path / "store"),
            "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db", "--no-progress",
            "--no-leaderboard"]


def finished_metrics(tmp_path: Path, suite: str) -> dict[tuple, dict]:
    from benchmark.tracking import Tracker

    tracker = Tracker(f"sqlite:///{tmp_path}/mlflow.db")
    out = {}
    for run in tracker.search(tracker.experiment_id(suite, create=False)):
        tags = run.data.tags
        out[(tags["kdbench.role"], tags["loss"], tags["seed"], run.info.status)] = run
    return out


def test_cohort_equals_separate_runs_bit_for_bit(tmp_path):
    from benchmark.config import load_suite
    from benchmark.engine import RunEnv, train_cohort
    from benchmark.plan import PlanOptions, expand_suite

    suite = load_suite(str(write_suite(tmp_path, "cohort", "student, sp, crd, fitnet")))
    specs = expand_suite(suite, PlanOptions(epochs=2))
    env = RunEnv(device=torch.device("cpu"), store=tmp_path / "store")
    [teacher] = train_cohort([specs[0].teacher_spec()], env)
    assert teacher.status == "FINISHED" and teacher.test_acc_last > 50

    histories = {}

    def record(member, metrics):
        histories.setdefault(member.spec.loss, []).append(metrics)

    together = train_cohort(specs, env, on_epoch=record)
    cohort_histories, histories = histories, {}
    # Alone, each run gets a fresh store (same teacher) so nothing resumes from the cohort's.
    alone = []
    for i, spec in enumerate(specs):
        store = tmp_path / f"alone{i}"
        shutil.copytree(Store(tmp_path / "store").teachers_dir, Store(store).teachers_dir)
        alone_env = RunEnv(device=torch.device("cpu"), store=store)
        alone += train_cohort([spec], alone_env, on_epoch=record)
    assert set(histories) == set(cohort_histories) == {"student", "sp", "crd", "fitnet"}
    assert all(len(h) == 2 for h in histories.values())
    assert [r.status for r in together] == ["FINISHED"] * len(specs)
    for a, b in zip(together, alone):
        assert a.test_acc_last == b.test_acc_last
        assert a.test_acc_best == b.test_acc_best
    for label, history in cohort_histories.items():
        for epoch_a, epoch_b in zip(history, histories[label]):
            assert {k: v for k, v in epoch_a.items() if k != "images_per_s"} == \
                {k: v for k, v in epoch_b.items() if k != "images_per_s"}
    # Weights too, bit for bit.
    from safetensors.torch import load_file

    for a, b in zip(together, alone):
        wa, wb = load_file(a.weights_path), load_file(b.weights_path)
        assert all(torch.equal(wa[k], wb[k]) for k in wa)


def _config_artifact(tmp_path: Path, run) -> dict:
    """The run's ``config.json`` artifact (the resolved configuration)."""
    import json

    import mlflow.artifacts

    path = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="config.json",
                                               tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
                                               dst_path=str(tmp_path / run.info.run_id))
    return json.loads(Path(path).read_text())


def test_run_tracks_everything_then_skips_when_finished(tmp_path, capsys):
    suite = write_suite(tmp_path, "tracked", "student, kd, sp", seeds="0, 1")
    assert main(cli(tmp_path, "run", str(suite), "--epochs", "2")) == 0
    runs = finished_metrics(tmp_path, "tracked")
    students = [r for k, r in runs.items() if k[0] == "student" and k[3] == "FINISHED"]
    teachers = [r for k, r in runs.items() if k[0] == "teacher" and k[3] == "FINISHED"]
    assert len(students) == 6 and len(teachers) == 1
    for run in students + teachers:
        tags, metrics, params = run.data.tags, run.data.metrics, run.data.params
        for tag in ("suite", "dataset", "teacher", "student", "loss", "seed", "recipe",
                    "config_hash", "setting_hash", "kdbench.spec", "git_commit",
                    "torch_version", "device", "env.cpu_model", "env.cpu_isa", "env.gpu",
                    "env.cuda", "env.cudnn", "env.gpu_driver", "env.torch", "env.torchvision",
                    "env.numpy", "env.torch_threads", "env.kdbench_version", "env.git_commit"):
            assert tags.get(tag), tag
        config = _config_artifact(tmp_path, run)
        assert config["config_hash"] == tags["config_hash"]
        assert config["spec"]["seed"] == int(tags["seed"])
        assert tags["scaled"] == "true" and tags["suite"] == "tracked"
        for metric in ("test_acc_last", "test_acc_best", "best_epoch", "wall_time_s",
                       "train_acc", "test_acc", "lr", "images_per_s", "loss/total"):
            assert metric in metrics, metric
        assert 0 <= metrics["test_acc_last"] <= 100
        assert params["recipe.epochs"] == "2" and params["seed"] == tags["seed"]
    sp = runs[("student", "sp", "0", "FINISHED")]
    assert "loss/sp" in sp.data.metrics and sp.data.params["weight.sp"] == "3000.0"

    # A second run of the finished suite trains nothing.
    capsys.readouterr()
    assert main(cli(tmp_path, "run", str(suite), "--epochs", "2")) == 0
    out = capsys.readouterr().out
    assert "6 already finished, 0 to train" in out
    assert len(finished_metrics(tmp_path, "tracked")) == len(runs)


def test_nan_run_fails_while_others_finish(tmp_path, capsys):
    plugin = tmp_path / "nan_plugin.py"
    plugin.write_text(NAN_PLUGIN)
    suite = tmp_path / "nan.yaml"
    suite.write_text(textwrap.dedent(SUITE.format(name="nan", losses="student, sp", seeds="0"))
                     .replace("losses: [student, sp]",
                              "losses:\n  - student\n  - sp\n"
                              "  - {label: broken, terms: {ce: 1, nan_after: 1}}"))
    from losses.registry import unregister_loss

    try:
        code = main(cli(tmp_path, "run", str(suite), "--epochs", "2", "--plugin", str(plugin)))
    finally:  # the plugin's loss must not leak into other tests run by this worker
        unregister_loss("nan_after")
    out = capsys.readouterr().out
    assert code == 1
    assert "FAILED student digits_cnn_small broken seed 0: NonFiniteLoss" in out
    runs = finished_metrics(tmp_path, "nan")
    assert ("student", "broken", "0", "FAILED") in runs
    assert "non-finite" in runs[("student", "broken", "0", "FAILED")].data.tags["failure_reason"]
    assert ("student", "sp", "0", "FINISHED") in runs
    assert ("student", "student", "0", "FINISHED") in runs


def _final(runs: dict) -> dict:
    return {k[:3]: {m: v for m, v in r.data.metrics.items()
                    if m not in ("wall_time_s", "images_per_s")}
            for k, r in runs.items() if k[3] == "FINISHED"}


def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(tmp_path):
    suite_a = write_suite(tmp_path, "resume", "student, sp, crd")
    # Same thread count as this process: CPU results are bitwise reproducible per thread count.
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
           "OMP_NUM_THREADS": str(torch.get_num_threads())}
    base = [sys.executable, "-m", "benchmark"]
    epochs = "5"
    reference = tmp_path / "ref"
    reference.mkdir()
    assert main(cli(reference, "run", str(suite_a), "--epochs", epochs)) == 0

    victim = tmp_path / "victim"
    victim.mkdir()
    proc = subprocess.Popen(base + cli(victim, "run", str(suite_a), "--epochs", epochs),
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    from benchmark.config import load_suite
    from benchmark.plan import PlanOptions, expand_suite

    students = {r.config_hash for r in expand_suite(load_suite(str(suite_a)),
                                                    PlanOptions(epochs=int(epochs)))}
    checkpoints = Store(victim / "store").checkpoints_dir
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        # Kill while the students train (CRD's memory banks are part of what must resume):
        # once a student has written its first epoch checkpoint.
        if any(p.stem in students for p in checkpoints.glob("*.pt")):
            time.sleep(0.05)  # into the next epoch
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    interrupted = finished_metrics(victim, "resume")
    assert any(k[3] == "RUNNING" for k in interrupted)

    assert main(cli(victim, "run", str(suite_a), "--epochs", epochs)) == 0
    resumed = finished_metrics(victim, "resume")
    assert not any(k[3] == "RUNNING" for k in resumed)
    assert _final(resumed) == _final(finished_metrics(reference, "resume"))
