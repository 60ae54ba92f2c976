"""Smoke tests of services.py: real PostgreSQL, MLflow server and a two-node Ray cluster."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from .conftest import require_module, require_postgres
from .services import _proc_table, mlflow_server, postgres_server, ray_cluster

pytestmark = pytest.mark.integration


def _port_closed(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture
def no_proxy(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def test_postgres_and_mlflow_server(tmp_path, no_proxy):
    psycopg2 = require_module("psycopg2", "pip install -e '.[cluster]'")
    require_postgres()
    from mlflow.tracking import MlflowClient

    timings = {}
    t0 = time.monotonic()
    with postgres_server(tmp_path / "pg") as pg:
        timings["postgres"] = time.monotonic() - t0
        optuna_url = pg.create_database("optuna")
        mlflow_url = pg.create_database("mlflow")
        assert optuna_url == f"postgresql+psycopg2://postgres@127.0.0.1:{pg.port}/optuna"

        with psycopg2.connect(pg.dsn("optuna")) as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
        conn.close()

        t0 = time.monotonic()
        with mlflow_server(mlflow_url, tmp_path / "artifacts", tmp_path / "mlflow") as uri:
            timings["mlflow"] = time.monotonic() - t0
            client = MlflowClient(tracking_uri=uri)
            exp_id = client.create_experiment("smoke")
            run = client.create_run(exp_id, run_name="r1")
            client.log_metric(run.info.run_id, "acc", 0.5)
            client.set_terminated(run.info.run_id)

            got = client.get_run(run.info.run_id)
            assert got.data.metrics == {"acc": 0.5}
            assert got.info.status == "FINISHED"
            assert client.get_experiment_by_name("smoke").experiment_id == exp_id
        assert _port_closed(int(uri.rsplit(":", 1)[1]))

        # The runs really live in PostgreSQL.
        with psycopg2.connect(pg.dsn("mlflow")) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM runs")
            assert cur.fetchone() == (1,)
        conn.close()
    assert _port_closed(pg.port)
    assert not [cmd for _, _, cmd in _proc_table().values() if str(pg.pgdata) in cmd]
    print(f"startup seconds: {timings}")


_DRIVER = textwrap.dedent(
    """
    import ray
    ray.init(logging_level="ERROR", log_to_driver=False)  # RAY_ADDRESS comes from cluster.env

    @ray.remote(num_cpus=1)
    def square(x):
        return x * x

    print(sum(ray.get([square.remote(i) for i in range(4)])))
    """
)


def test_ray_cluster_two_nodes_and_worker_loss(tmp_path):
    require_module("ray", "pip install -e '.[cluster]'")
    t0 = time.monotonic()
    with ray_cluster(tmp_path / "ray") as cluster:
        started = time.monotonic() - t0
        assert cluster.address.startswith("127.0.0.1:")
        assert cluster.alive_nodes() == 2

        # The driver runs in a subprocess: the test process itself never connects to Ray.
        res = subprocess.run(
            [sys.executable, "-c", _DRIVER],
            env={**os.environ, **cluster.env}, capture_output=True, text=True, timeout=120, cwd=tmp_path,
        )
        assert res.returncode == 0, res.stderr[-3000:]
        assert res.stdout.strip().splitlines()[-1] == "14"

        t0 = time.monotonic()
        cluster.kill_worker()
        cluster.wait_for_nodes(1, timeout=60)
        dead = time.monotonic() - t0
        temp_root = cluster.head.temp_dir.parent
    print(f"ray cluster up in {started:.1f} s; worker node dead {dead:.1f} s after kill_worker()")
    assert not temp_root.exists()
    assert not [cmd for _, _, cmd in _proc_table().values() if str(temp_root) in cmd]
