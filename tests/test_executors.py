"""Executors (benchmark/executors): the local executor's in-process and process-pool paths, the
options a Ray cluster needs (absolute paths, --jobs), fast clear errors for an unreachable Ray
cluster, and what a cohort lost for good leaves in MLflow (KILLED, resumable). The Ray executor
itself runs end to end in tests/integration/test_cluster.py."""

from __future__ import annotations

import os
import socket

import pytest

from benchmark.cli import main
from benchmark.commands.run import parse_jobs
from benchmark.executors import make_executor
from benchmark.executors.local import LocalExecutor
from benchmark.runner import RunOptions, with_absolute_paths
from benchmark.tracking import absolute_tracking_uri
from studies.storage import absolute_storage


def square_with_threads(x: int, threads=None) -> tuple[int, object, int]:
    return x * x, threads, os.getpid()


def test_local_executor_runs_in_process_with_one_job():
    with LocalExecutor(1) as executor:
        out = dict(executor.map_unordered(square_with_threads, [(2,), (3,)]))
    assert out == {0: (4, None, os.getpid()), 1: (9, None, os.getpid())}


def test_local_executor_spreads_calls_over_processes_with_a_share_of_threads():
    with LocalExecutor(2) as executor:
        out = dict(executor.map_unordered(square_with_threads, [(i,) for i in range(4)]))
    assert sorted(out) == [0, 1, 2, 3]
    assert [out[i][0] for i in range(4)] == [0, 1, 4, 9]
    assert {out[i][1] for i in range(4)} == {max(1, (os.cpu_count() or 1) // 2)}
    assert os.getpid() not in {out[i][2] for i in range(4)}


def test_make_executor_by_name():
    assert make_executor(RunOptions(jobs=3)).slots() == 3
    assert make_executor(RunOptions(jobs=1)).in_process
    assert not make_executor(RunOptions(jobs=3)).in_process
    assert make_executor(RunOptions(executor="ray", address="h:1")).address == "h:1"


def test_jobs_default_and_auto_per_executor():
    assert parse_jobs(None, "cpu") == 1
    assert parse_jobs("auto", "cpu") == max(1, os.cpu_count() or 1)
    assert parse_jobs(None, "cpu", "ray") == 0  # as many workers as the cluster has slots
    assert parse_jobs("auto", "cuda", "ray") == 0  # the cluster decides, not this machine
    assert parse_jobs("3", "cpu", "ray") == 3


def test_paths_become_absolute_for_the_cluster(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plugin = tmp_path / "my_loss.py"
    plugin.write_text("")
    options = with_absolute_paths(RunOptions(store="store", data_dir="data",
                                           tracking_uri="sqlite:///runs/mlflow.db",
                                           plugins=["my_loss.py:MyLoss"]))
    assert options.store == str(tmp_path / "store")
    assert options.data_dir == str(tmp_path / "data")
    assert options.tracking_uri == f"sqlite:///{tmp_path}/runs/mlflow.db"
    assert options.plugins == [f"{plugin}:MyLoss"]
    assert absolute_tracking_uri("http://head:5000") == "http://head:5000"
    assert absolute_tracking_uri("file:mlruns") == f"file://{tmp_path}/mlruns"
    assert absolute_tracking_uri("sqlite:////abs/m.db") == "sqlite:////abs/m.db"
    assert absolute_tracking_uri(None).startswith(f"sqlite:///{tmp_path}/")
    assert absolute_storage(None) == f"sqlite:///{tmp_path}/optuna.db"
    assert absolute_storage("journal:logs/s.log") == f"journal:{tmp_path}/logs/s.log"
    url = "postgresql+psycopg2://u:p@db:5432/optuna"
    assert absolute_storage(url) == url


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_ray_address_is_a_clear_error_with_exit_2(tmp_path, capsys):
    pytest.importorskip("ray")
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\nrecipe: digits\ndatasets: [digits]\npairs:\n"
                     "  - {teacher: digits_cnn_large, student: digits_cnn_small}\n"
                     "losses: [kd]\nseeds: [0]\n")
    address = f"127.0.0.1:{closed_port()}"
    code = main(["run", str(suite), "--executor", "ray", "--address", address, "--store",
                 str(tmp_path / "store"), "--tracking-uri", f"sqlite:///{tmp_path}/m.db",
                 "--no-progress", "--no-leaderboard"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"no Ray cluster answers at {address}" in err and "ray start --head" in err
    assert "Traceback" not in err


def test_negative_max_retries_is_refused(tmp_path, capsys):
    code = main(["run", "--executor", "ray", "--max-retries", "-1", "--store",
                 str(tmp_path / "store"), "--tracking-uri", f"sqlite:///{tmp_path}/m.db"])
    assert code == 2
    assert "--max-retries must be 0 or more" in capsys.readouterr().err


def test_a_lost_cohort_is_killed_in_mlflow_and_resumes_on_the_next_run(tmp_path):
    from benchmark.config import load_suite
    from benchmark.plan import PlanOptions, expand_suite
    from benchmark.runner import _assign_run_ids, _lost_cohort
    from benchmark.tracking import Tracker

    suite = tmp_path / "lost.yaml"
    suite.write_text("name: lost\nrecipe: digits\ndatasets: [digits]\npairs:\n"
                     "  - {teacher: digits_cnn_large, student: digits_cnn_small}\n"
                     "losses: [kd, sp]\nseeds: [0]\n")
    specs = expand_suite(load_suite(str(suite)), PlanOptions(epochs=2))
    uri = f"sqlite:///{tmp_path}/m.db"
    tracker = Tracker(uri)
    first = _assign_run_ids(tracker, "lost", specs, "cpu", str(tmp_path))
    options = RunOptions(store=str(tmp_path / "store"), tracking_uri=uri)
    results = _lost_cohort(specs, "lost", options, "node died")
    assert [r.status for r in results] == ["FAILED", "FAILED"]
    assert all(r.reason == "node died" for r in results)
    for spec in specs:
        run = tracker.get_run(first[spec.config_hash])
        assert run.info.status == "KILLED"
        assert run.data.tags["failure_reason"] == "node died"
    again = _assign_run_ids(tracker, "lost", specs, "cpu", str(tmp_path))
    assert again == first  # the next run resumes the same MLflow runs
    assert all(tracker.get_run(i).info.status == "RUNNING" for i in again.values())
