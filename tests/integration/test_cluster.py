"""Scale-out end to end, on loopback: a real two-node Ray cluster, a real PostgreSQL server and an
``mlflow server`` backed by it.

- A digits suite run with ``--executor ray`` survives losing the worker node mid-run (its cohorts
  are retried on a replacement node and resume from their checkpoints in the shared store): every run
  is in MLflow once, FINISHED, every epoch logged once, with the same config hashes and the same
  metrics as a local run of the same suite.
- Two ``kdbench tune --executor ray`` drivers share one study on PostgreSQL: together they run
  exactly the budget, and every trial has its nested MLflow run under the study's parent run.
- Two ``kdbench run`` drivers on one store and the MLflow server train every run exactly once
  (leases), the teacher included.

Both checks share one set of services, so they are one test (pytest-xdist may put two tests on two
workers); everything started is stopped at its end (see services.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from benchmark.store import Store

from .conftest import require_module, require_postgres
from .services import mlflow_server, postgres_server, ray_cluster

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EPOCHS = 8
SUITE = textwrap.dedent("""
    name: cluster
    recipe: digits
    datasets: [digits]
    pairs:
      - {teacher: digits_cnn_large, student: digits_cnn_small}
    losses: [kd, sp]
    seeds: [0, 1]
""")


@pytest.fixture
def services(tmp_path_factory):
    """PostgreSQL (databases ``mlflow`` and ``optuna``), an MLflow server on it, a Ray cluster
    of a head node with no CPU slots (it only coordinates, so every task is on the worker node)
    and a worker node with two, and a store folder all nodes share."""
    require_module("ray", "pip install -e '.[cluster]'")
    require_module("psycopg2", "pip install -e '.[cluster]'")
    require_postgres()
    root = tmp_path_factory.mktemp("cluster")
    with postgres_server(root / "pg") as pg:
        optuna_url = pg.create_database("optuna")
        with mlflow_server(pg.create_database("mlflow"), root / "artifacts",
                           root / "mlflow") as tracking_uri, \
                ray_cluster(root / "ray", head_cpus=0, worker_cpus=2) as cluster:
            cluster.wait_for_nodes(2, timeout=90)
            yield dict(root=root, optuna=optuna_url, tracking=tracking_uri, cluster=cluster)


def kdbench(args: list[str], cwd: Path, env: dict, **kw) -> subprocess.Popen:
    """``python -m benchmark ARGS`` as a driver process (one torch thread, like the tasks)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NO_PROXY": "127.0.0.1,localhost",
           "no_proxy": "127.0.0.1,localhost", **env}
    return subprocess.Popen([sys.executable, "-m", "benchmark", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def finish(proc: subprocess.Popen, timeout: float = 600) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"kdbench exited {proc.returncode}:\n{out[-6000:]}"
    return out


def runs_of(tracking_uri: str, experiment: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no experiment {experiment} in {tracking_uri}"
    return client.search_runs([exp.experiment_id], max_results=10000)


def epoch_histories(tracking_uri: str, run) -> dict[str, list[tuple[int, float]]]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    return {key: sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id,
                                                                              key))
            for key in ("train_acc", "test_acc", "test_top5", "loss/total")}


def by_hash(tracking_uri: str, experiment: str) -> dict[str, dict]:
    """Per config hash: status, final test accuracy and per-epoch histories (each run once)."""
    runs = runs_of(tracking_uri, experiment)
    hashes = [r.data.tags["config_hash"] for r in runs]
    assert len(hashes) == len(set(hashes)), f"duplicated runs: {sorted(hashes)}"
    return {r.data.tags["config_hash"]: dict(
        status=r.info.status, role=r.data.tags["kdbench.role"],
        test_acc_last=r.data.metrics.get("test_acc_last"),
        resumed=r.data.tags.get("kdbench.resumed_at_epoch"), pid=r.data.tags.get("pid"),
        histories=epoch_histories(tracking_uri, r)) for r in runs}


def wait_for_a_checkpoint(store: Path, students: set[str], proc: subprocess.Popen,
                          timeout: float = 300) -> set[str]:
    """Until a student has checkpointed its first epoch; the students with a checkpoint."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, ("the Ray run ended before the worker node was killed:\n"
                                     f"{proc.stdout.read()[-4000:]}")
        present = {h for h in students if Store(store).checkpoint(h).exists()}
        if present:
            return present
        time.sleep(0.05)
    raise TimeoutError(f"no student of {sorted(students)} checkpointed within {timeout} s")


def test_cluster_tuning_then_a_suite_losing_its_worker_node(services, tmp_path):
    """The tuning drivers run first (with the worker node), then the suite loses the node."""
    (tmp_path / "tune").mkdir()
    (tmp_path / "run").mkdir()
    (tmp_path / "two").mkdir()
    check_two_tuning_drivers_share_one_postgresql_study(services, tmp_path / "tune")
    check_two_run_drivers_on_one_mlflow_server_train_each_run_once(services, tmp_path / "two")
    check_ray_suite_survives_worker_loss_and_equals_local_run(services, tmp_path / "run")


def check_two_run_drivers_on_one_mlflow_server_train_each_run_once(services, tmp_path):
    """Two ``kdbench run`` drivers on one store and one MLflow server (PostgreSQL behind it)
    lease the runs between them: every config hash has one FINISHED run, every epoch is logged
    once, the teacher is trained once."""
    tracking = services["tracking"]
    suite = tmp_path / "pair.yaml"
    suite.write_text(SUITE.replace("name: cluster", "name: pair"))
    store = tmp_path / "store"
    args = ["run", str(suite), "--epochs", "2", "--jobs", "1", "--tracking-uri", tracking,
            "--store", str(store), "--no-progress", "--no-leaderboard"]
    drivers = [kdbench(args, tmp_path, {"KDBENCH_LEASE_TTL": "10"}) for _ in range(2)]
    outputs = [finish(d) for d in drivers]
    runs = by_hash(tracking, "kdbench/pair")  # asserts no config hash has two runs
    assert len(runs) == 5, outputs  # 4 students and their teacher
    for run in runs.values():
        assert run["status"] == "FINISHED"
        assert [step for step, _ in run["histories"]["train_acc"]] == [1, 2]
    assert len(list(Store(store).teachers_dir.glob("*/*.safetensors"))) == 1
    assert not list(Store(store).leases_dir.glob("*.json"))


def check_two_tuning_drivers_share_one_postgresql_study(services, tmp_path):
    from mlflow.tracking import MlflowClient
    import optuna

    cluster, tracking = services["cluster"], services["tracking"]
    suite = tmp_path / "cluster.yaml"
    suite.write_text(SUITE)
    trials = 6
    args = ["tune", str(suite), "--loss", "sp", "--trials", str(trials), "--cohort-size", "2",
            "--epochs", "2", "--executor", "ray", "--address", cluster.address, "--jobs", "1",
            "--storage", services["optuna"], "--study-name", "shared-sp",
            "--tracking-uri", tracking, "--store", str(services["root"] / "shared-store"),
            "--no-progress"]
    drivers = [kdbench(args + ["--tuned-weights", str(tmp_path / f"tuned{i}.yaml")],
                       tmp_path, cluster.env) for i in range(2)]
    outputs = [finish(d) for d in drivers]

    study = optuna.load_study(study_name="shared-sp", storage=services["optuna"])
    states = [t.state for t in study.get_trials(deepcopy=False)]
    counted = [s for s in states if s in (optuna.trial.TrialState.COMPLETE,
                                          optuna.trial.TrialState.PRUNED)]
    assert len(counted) == trials, (states, outputs)
    assert optuna.trial.TrialState.RUNNING not in states

    client = MlflowClient(tracking)
    runs = runs_of(tracking, "kdbench/cluster-tune")
    parents = [r for r in runs if r.data.tags.get("kdbench.role") == "study"]
    assert len(parents) == 1, [r.data.tags for r in parents]
    nested = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    numbers = sorted(int(r.data.tags["optuna.trial"]) for r in nested)
    # Every trial that trained has its run; a trial both drivers asked for at the same instant
    # beyond the budget is set aside unrun (kdbench.over_budget) and has none.
    trained = [t.number for t in study.get_trials(deepcopy=False)
               if not t.user_attrs.get("kdbench.over_budget")]
    assert numbers == sorted(trained), (numbers, trained)
    parent = client.get_run(parents[0].info.run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["best_val_acc"] == pytest.approx(study.best_value)


def check_ray_suite_survives_worker_loss_and_equals_local_run(services, tmp_path):
    cluster, tracking = services["cluster"], services["tracking"]
    suite = tmp_path / "cluster.yaml"
    suite.write_text(SUITE)
    common = [str(suite), "--epochs", str(EPOCHS), "--no-progress", "--no-leaderboard"]
    ray_store = services["root"] / "shared-store"
    cluster.wait_for_nodes(2, timeout=30)  # the worker node is still there to be lost

    started = time.perf_counter()
    proc = kdbench(["run", *common, "--executor", "ray", "--address", cluster.address,
                    "--tracking-uri", tracking, "--store", str(ray_store)], tmp_path,
                   cluster.env)
    # Every task runs on the worker node (the head has no CPU slots): kill it as soon as a
    # cohort has checkpointed its first epoch; the lost tasks wait, a replacement node joins, and
    # they must resume there from their checkpoints.
    from benchmark.config import load_suite
    from benchmark.plan import PlanOptions, expand_suite

    students = {r.config_hash for r in expand_suite(load_suite(str(suite)),
                                                    PlanOptions(epochs=EPOCHS))}
    mid_run = wait_for_a_checkpoint(ray_store, students, proc)
    cluster.kill_worker()
    at_kill = {r.data.tags["config_hash"]: r.info.status
               for r in runs_of(tracking, "kdbench/cluster")}
    cluster.add_worker(cpus=2)
    out = finish(proc)
    ray_wall = time.perf_counter() - started
    assert "5 run(s) finished, 0 failed" in out, out[-4000:]

    started = time.perf_counter()
    finish(kdbench(["run", *common, "--executor", "local", "--jobs", "1",
                    "--tracking-uri", f"sqlite:///{tmp_path}/local.db",
                    "--store", str(tmp_path / "local-store")], tmp_path, {}))
    local_wall = time.perf_counter() - started
    print(f"\nwall time, same suite: local (1 process) {local_wall:.1f} s; Ray (a worker node "
          f"with 2 CPU slots, killed mid-run and replaced) {ray_wall:.1f} s")

    on_ray = by_hash(tracking, "kdbench/cluster")
    local = by_hash(f"sqlite:///{tmp_path}/local.db", "kdbench/cluster")
    assert set(on_ray) == set(local) and len(on_ray) == 5  # 1 teacher + 2 losses x 2 seeds
    assert all(r["status"] == "FINISHED" for r in on_ray.values())
    diagnosis = (f"checkpointed at the kill: {sorted(mid_run)}, runs then: {at_kill}; "
                 + "; ".join(f"{h} pid {r['pid']} resumed {r['resumed']} train_acc steps "
                             f"{[s for s, _ in r['histories']['train_acc']]}"
                             for h, r in on_ray.items()) + f"\n{out[-3000:]}")
    for config_hash, run in on_ray.items():  # nothing lost, nothing twice, same as local
        for key, history in run["histories"].items():
            assert [step for step, _ in history] == list(range(1, EPOCHS + 1)), diagnosis
        assert run["histories"] == local[config_hash]["histories"], diagnosis
        assert run["test_acc_last"] == local[config_hash]["test_acc_last"]
    # The cohort lost mid-run was retried on the new node and resumed from its checkpoints.
    assert all(at_kill[h] == "RUNNING" for h in mid_run), diagnosis
    assert all(on_ray[h]["resumed"] for h in mid_run), diagnosis
    assert not list(Store(ray_store).checkpoints_dir.glob("*.pt"))  # finished runs clean up
