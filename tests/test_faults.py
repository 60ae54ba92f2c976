"""Fault injection on real processes and a real MLflow SQLite store: concurrent drivers,
SIGINT/SIGTERM/SIGKILL mid-run and during teacher training, corrupt checkpoints, caches and
weights, a crash while the leaderboard is written. Every case asserts nothing lost (each run
ends FINISHED once), nothing duplicated (each epoch logged once, one teacher), and the metrics
of an uninterrupted run."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest
import torch

from benchmark.checkpoint import (CorruptFileWarning, load_checkpoint, load_stamped,
                                  previous_path, safetensors_intact, save_checkpoint,
                                  save_stamped)
from benchmark.cli import main
from benchmark.store import Store

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
EPOCHS = "3"


def write_suite(folder: Path, name: str, losses: str = "student, kd, sp",
                seeds: str = "0, 1") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(textwrap.dedent(f"""
        name: {name}
        recipe: digits
        datasets: [digits]
        pairs:
          - {{teacher: digits_cnn_large, student: digits_cnn_small}}
        losses: [{losses}]
        seeds: [{seeds}]
    """))
    return path


def cli(folder: Path, command: str, *args: str) -> list[str]:
    """One driver process training in itself (``--jobs 1`` unless ``args`` says otherwise)."""
    return [command, "--jobs", "1", *args, "--store", str(folder / "store"), "--tracking-uri",
            f"sqlite:///{folder}/mlflow.db", "--no-progress", "--no-leaderboard"]


def spawn(folder: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(torch.get_num_threads()),
           "KDBENCH_LEASE_TTL": "4"}
    return subprocess.Popen([sys.executable, "-m", "benchmark", *cli(folder, *args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def runs_of(folder: Path, suite: str) -> list:
    from benchmark.tracking import Tracker

    tracker = Tracker(f"sqlite:///{folder}/mlflow.db")
    exp = tracker.experiment_id(suite, create=False)
    return tracker.search(exp) if exp else []


def final_metrics(folder: Path, suite: str) -> dict[str, dict[str, float]]:
    """config hash -> final metrics of its FINISHED run (asserting there is exactly one)."""
    out: dict[str, dict[str, float]] = {}
    for run in runs_of(folder, suite):
        assert run.info.status == "FINISHED", (run.info.status, run.data.tags.get("loss"))
        key = run.data.tags["config_hash"]
        assert key not in out, f"two runs of {run.data.tags['loss']} seed {run.data.tags['seed']}"
        out[key] = {k: v for k, v in run.data.metrics.items()
                    if k in ("test_acc_last", "test_acc_best", "best_epoch", "test_top5_last")}
    return out


def assert_each_epoch_once(folder: Path, suite: str, epochs: int) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{folder}/mlflow.db")
    for run in runs_of(folder, suite):
        if run.data.tags.get("device") == "store":
            continue  # a teacher recorded from the store has no epochs
        steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "train_acc"))
        assert steps == list(range(1, epochs + 1)), (run.data.tags["loss"], steps)


def assert_no_leases(folder: Path) -> None:
    assert not list(Store(folder / "store").leases_dir.glob("*.json"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted driver: the metrics every faulted run must end with."""
    folder = tmp_path_factory.mktemp("reference")
    suite = write_suite(folder, "faults")
    assert main(cli(folder, "run", str(suite), "--epochs", EPOCHS)) == 0
    return suite, final_metrics(folder, "faults")


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if predicate():
            return
        time.sleep(0.02)
    output = proc.stdout.read() if proc.poll() is not None else ""
    raise AssertionError(f"the condition never held while the driver ran: {output[-2000:]}")


def student_checkpoint(folder: Path):
    """True once a student (not the teacher) has written an epoch checkpoint."""
    store = Store(folder / "store")

    def ready() -> bool:
        teachers = {p.stem.rsplit("-", 1)[-1] for p in store.teachers_dir.glob("*/*.json")}
        return bool(teachers) and any(p.stem not in teachers and not p.stem.endswith(".prev")
                                      for p in store.checkpoints_dir.glob("*.pt"))
    return ready


# ----- concurrent drivers -----
def test_two_drivers_share_one_suite_exactly_once(reference, tmp_path):
    suite, expected = reference
    first, second = spawn(tmp_path, "run", str(suite), "--epochs", EPOCHS), \
        spawn(tmp_path, "run", str(suite), "--epochs", EPOCHS)
    outputs = [p.communicate(timeout=600)[0] for p in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outputs
    assert final_metrics(tmp_path, "faults") == expected  # one FINISHED run per hash, same numbers
    assert_each_epoch_once(tmp_path, "faults", int(EPOCHS))
    teachers = list(Store(tmp_path / "store").teachers_dir.glob("*/*.safetensors"))
    assert len(teachers) == 1
    assert_no_leases(tmp_path)


def test_a_live_lease_is_skipped_and_an_expired_one_taken_over(tmp_path):
    from benchmark.leases import LeaseInfo, Leases

    with Leases(tmp_path, ttl=30) as mine, Leases(tmp_path, ttl=30) as other:
        assert mine.acquire("h1") is None
        holder = other.acquire("h1")
        assert holder is not None and holder.pid == os.getpid()
        mine.close()  # released
        assert other.acquire("h1") is None
    # A lease of a process that no longer exists, on this host, is expired at once ...
    dead = LeaseInfo(config_hash="h2", host=socket.gethostname(), pid=2 ** 22 + 12345,
                     token="dead", acquired=time.time(), heartbeat=time.time(), ttl=30)
    Store(tmp_path).lease("h2").write_text(json.dumps(dataclasses.asdict(dead)))
    assert not dead.is_live()
    # ... and so is one whose heartbeat is older than its TTL (a lost node).
    stale = dataclasses.replace(dead, host="elsewhere", pid=1, heartbeat=time.time() - 31)
    assert not stale.is_live() and dataclasses.replace(stale, heartbeat=time.time()).is_live()
    with Leases(tmp_path, ttl=30) as taker:
        assert taker.acquire("h2") is None
        assert taker.read("h2").token == taker.token


# ----- interrupts -----
@pytest.mark.parametrize("signum, code, jobs", [(signal.SIGINT, 130, "1"),
                                                (signal.SIGTERM, 143, "1"),
                                                (signal.SIGTERM, 143, "2")])
def test_interrupt_marks_runs_killed_then_the_next_run_resumes(reference, tmp_path, signum,
                                                                code, jobs):
    suite, expected = reference
    proc = spawn(tmp_path, "run", str(suite), "--epochs", EPOCHS, "--jobs", jobs)
    wait_for(student_checkpoint(tmp_path), proc)
    proc.send_signal(signum)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == code, output
    assert "Traceback" not in output and "interrupted" in output
    statuses = {(r.info.status, r.data.tags.get("failure_reason", "")) for r in
                runs_of(tmp_path, "faults")}
    assert "RUNNING" not in {s for s, _ in statuses}
    killed = [reason for status, reason in statuses if status == "KILLED"]
    assert killed and all("interrupted by SIG" in reason for reason in killed)
    assert_no_leases(tmp_path)

    assert main(cli(tmp_path, "run", str(suite), "--epochs", EPOCHS)) == 0
    assert final_metrics(tmp_path, "faults") == expected
    assert_each_epoch_once(tmp_path, "faults", int(EPOCHS))


@pytest.mark.parametrize("when", ["teacher", "students"])
def test_sigkill_leaves_a_lease_that_expires_and_the_next_driver_resumes(reference, tmp_path,
                                                                          when):
    suite, expected = reference
    proc = spawn(tmp_path, "run", str(suite), "--epochs", EPOCHS)
    store = Store(tmp_path / "store")
    if when == "teacher":
        wait_for(lambda: any(store.checkpoints_dir.glob("*.pt"))
                 and not any(store.teachers_dir.glob("*/*.json")), proc)
    else:
        wait_for(student_checkpoint(tmp_path), proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list(store.leases_dir.glob("*.json")), "the killed driver's leases stay behind"

    assert main(cli(tmp_path, "run", str(suite), "--epochs", EPOCHS)) == 0
    assert final_metrics(tmp_path, "faults") == expected
    assert_each_epoch_once(tmp_path, "faults", int(EPOCHS))
    assert len(list(store.teachers_dir.glob("*/*.safetensors"))) == 1
    assert_no_leases(tmp_path)


# ----- corrupt files -----
class Crash(BaseException):
    """Stands for the process dying right after a checkpoint (nothing catches it)."""


def test_corrupt_checkpoints_restart_that_run_alone_with_the_same_metrics(reference, tmp_path,
                                                                            monkeypatch):
    """kd's newest checkpoint is torn (it resumes one generation back), sp's both generations
    are (it restarts from scratch); student resumes normally; all end as if uninterrupted, in
    their own MLflow runs, each epoch logged once."""
    from benchmark.engine import Member
    from benchmark.plan import PlanOptions, expand_suite
    from benchmark.config import load_suite

    suite, expected = reference
    original = Member.save

    def save_then_die(self):
        original(self)
        if self.epoch == 2 and self.spec.loss == "sp" and self.spec.seed == 0:
            raise Crash()

    monkeypatch.setattr(Member, "save", save_then_die)
    with pytest.raises(Crash):
        main(cli(tmp_path, "run", str(suite), "--epochs", EPOCHS))
    monkeypatch.setattr(Member, "save", original)

    specs = {(s.loss, s.seed): s for s in expand_suite(load_suite(str(suite)),
                                                       PlanOptions(epochs=int(EPOCHS)))}
    store = Store(tmp_path / "store")
    kd, sp = store.checkpoint(specs[("kd", 0)].config_hash), \
        store.checkpoint(specs[("sp", 0)].config_hash)
    for path in (kd, sp, previous_path(sp)):
        assert path.exists()
        path.write_bytes(path.read_bytes()[:100])  # a full disk, an interrupted copy

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(cli(tmp_path, "run", str(suite), "--epochs", EPOCHS)) == 0
    named = {str(w.message).split(" is unreadable")[0].removeprefix("kdbench: ")
             for w in caught if issubclass(w.category, CorruptFileWarning)}
    assert named == {str(kd), str(sp), str(previous_path(sp))}
    assert len(list(store.checkpoints_dir.glob("*.corrupt-*"))) == 3
    assert final_metrics(tmp_path, "faults") == expected
    assert_each_epoch_once(tmp_path, "faults", int(EPOCHS))


def test_a_damaged_checkpoint_falls_back_one_generation(tmp_path):
    path = tmp_path / "run.pt"
    save_checkpoint(path, {"epoch": 1}, keep_previous=True)
    save_checkpoint(path, {"epoch": 2}, keep_previous=True)
    assert load_checkpoint(path)["epoch"] == 2 and load_checkpoint(previous_path(path))["epoch"] == 1
    path.write_bytes(b"PK\x03\x04 torn")
    with pytest.warns(CorruptFileWarning, match=str(path)):
        assert load_checkpoint(path)["epoch"] == 1
    assert not path.exists() and list(tmp_path.glob("run.pt.corrupt-*"))


def test_corrupt_caches_are_moved_aside_and_rebuilt(tmp_path):
    path = tmp_path / "cache.pt"
    save_stamped(path, "v1", {"x": torch.arange(3)})
    assert torch.equal(load_stamped(path, "v1")["x"], torch.arange(3))
    path.write_bytes(b"garbage")
    with pytest.warns(CorruptFileWarning, match="cache.pt"):
        assert load_stamped(path, "v1") is None  # the caller rebuilds it
    save_stamped(path, "v1", {"x": torch.arange(3)})
    assert load_stamped(path, "v1") is not None


def test_a_corrupt_student_weights_file_is_rebuilt_by_the_next_run(reference, tmp_path):
    suite, expected = reference
    assert main(cli(tmp_path, "run", str(suite), "--epochs", EPOCHS)) == 0
    weights = sorted(Store(tmp_path / "store").students_dir.glob("*.safetensors"))
    assert weights and all(safetensors_intact(p) for p in weights)
    victim = weights[0]
    victim.write_bytes(victim.read_bytes()[:-10])
    assert not safetensors_intact(victim)
    with pytest.warns(CorruptFileWarning, match=victim.name):
        assert main(cli(tmp_path, "run", str(suite), "--epochs", EPOCHS)) == 0
    assert safetensors_intact(victim)
    statuses = sorted(r.info.status for r in runs_of(tmp_path, "faults")
                      if r.data.tags["config_hash"] == victim.stem)
    assert statuses == ["FINISHED", "FINISHED"]  # the rerun counts; the damaged one is listed


def test_corrupt_teacher_weights_are_a_clear_error(reference, tmp_path, capsys):
    suite, _ = reference
    assert main(cli(tmp_path, "run", str(suite), "--epochs", "1", "--seeds", "0",
                    "--only", "loss=student")) == 0
    [teacher] = Store(tmp_path / "store").teachers_dir.glob("*/*.safetensors")
    teacher.write_bytes(teacher.read_bytes()[:-5])
    code = main(cli(tmp_path, "run", str(suite), "--epochs", "1", "--seeds", "0",
                    "--only", "loss=kd"))
    out = capsys.readouterr()
    assert code == 1  # the run fails with the reason; nothing else is lost
    failed = [r for r in runs_of(tmp_path, "faults") if r.info.status == "FAILED"]
    assert failed and str(teacher) in failed[0].data.tags["failure_reason"]
    assert "delete both files and train or import the teacher again" in \
        failed[0].data.tags["failure_reason"]
    assert "Traceback" not in out.err


def test_a_crash_while_the_leaderboard_is_written_leaves_whole_files(reference, tmp_path,
                                                                      monkeypatch):
    import benchmark.checkpoint as checkpoint
    from benchmark.leaderboard import write_leaderboard

    suite, _ = reference
    assert main(cli(tmp_path, "run", str(suite), "--epochs", "1", "--seeds", "0")) == 0
    uri, out = f"sqlite:///{tmp_path}/mlflow.db", tmp_path / "board"
    first = write_leaderboard("faults", uri, out, formats="md,csv", suite_file=str(suite))
    before = {name: path.read_bytes() for name, path in first.paths.items()}
    original, calls = checkpoint.atomic_write_bytes, []

    def die_on_second(path, data):
        calls.append(path)
        if len(calls) == 2:
            original(path.with_name(path.name + ".x"), data[: len(data) // 2])  # torn elsewhere
            raise Crash()
        original(path, data)

    monkeypatch.setattr(checkpoint, "atomic_write_bytes", die_on_second)
    with pytest.raises(Crash):
        write_leaderboard("faults", uri, out, formats="md,csv", suite_file=str(suite))
    for name, path in first.paths.items():
        assert path.read_bytes() == before[name]  # old or new, never torn


def test_an_interrupt_inside_a_store_write_is_raised_when_the_write_ends():
    from benchmark.interrupts import Terminated, deferred, handling_signals

    steps = []
    with handling_signals(), pytest.raises(Terminated):
        with deferred():  # what Tracker holds around every MLflow call
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)  # the handler has run by now, and did not raise here
            steps.append("write finished")
    assert steps == ["write finished"]
    with handling_signals(), pytest.raises(KeyboardInterrupt):  # outside a write: at once
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        steps.append("not reached")
    assert steps == ["write finished"]
