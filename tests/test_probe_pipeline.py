"""The transfer probe end to end on tiny fake STL-10 and TinyImageNet copies in their on-disk
formats and a real MLflow store made here: every finished student (the CE-only baseline too)
and the teacher are probed, failed and running runs are not; results land in
``kdbench/<suite>-probe`` with their tags, settings and accuracy, and in the transfer table;
weights files are untouched; embeddings are cached and invalidated by new weights; a second
probe is skipped; the CLI reports bad input with exit code 2."""

import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient
from safetensors.torch import save_file

import models
from benchmark import cli
from benchmark.errors import UserError
from benchmark.leaderboard.layout import Pair
from benchmark.leaderboard.published import load_published
from benchmark.leaderboard.transfer import (build_transfer_board, collect_probe_runs,
                                            write_transfer_leaderboard)
from benchmark.probe import ProbeSettings, run_probe
from benchmark.probe import run as probe_run
from benchmark.store import Store
from benchmark.teachers import sha256_of
from test_data_formats import write_stl10, write_tinyimagenet

SUITE = "ptest"
TEACHER, STUDENT = "digits_cnn_large", "digits_cnn_small"
SETTINGS = ProbeSettings(epochs=3, batch_size=8)
#: (role, loss, seed) of the FINISHED source runs.
FINISHED = [("teacher", "teacher", 0), ("student", "student", 0), ("student", "student", 1),
            ("student", "sp", 0), ("student", "sp", 1), ("student", "kd", 0)]


def save_network(path: Path, arch: str, seed: int) -> Path:
    """A CIFAR-shaped (100 classes, RGB) network with non-default BatchNorm statistics."""
    torch.manual_seed(seed)
    model = models.create_model(arch, num_classes=100, in_chans=3).train()
    with torch.no_grad():
        model(torch.randn(8, 3, 32, 32))
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """Fake data sets and an empty, migrated MLflow database, made once per module (creating
    MLflow's schema takes seconds); every test copies the database and reads the data."""
    root = tmp_path_factory.mktemp("template")
    write_stl10(root / "data")
    write_tinyimagenet(root / "data")
    MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}").search_experiments()
    return root


@pytest.fixture
def world(template, tmp_path):
    """The fake data, a store of weights and an MLflow store holding the suite's runs."""
    data = template / "data"
    shutil.copy(template / "mlflow.db", tmp_path / "mlflow.db")
    store = tmp_path / "store"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment(f"kdbench/{SUITE}")
    runs = {}

    def log(role, loss, seed, status="FINISHED"):
        arch = TEACHER if role == "teacher" else STUDENT
        config = f"{loss}{seed}{role}"
        tags = {"kdbench.role": role, "suite": SUITE, "dataset": "cifar100", "teacher": TEACHER,
                "student": arch, "loss": loss, "seed": str(seed), "config_hash": config,
                "scaled": "true"}
        if status == "FINISHED":
            path = (Store(store).teacher_weights("cifar100", arch, seed, config)
                    if role == "teacher" else Store(store).student_weights(config))
            weights = save_network(path, arch, seed + 10 * len(runs))
            tags["weights_path"] = str(weights)
        run = client.create_run(experiment, tags=tags)
        client.log_metric(run.info.run_id, "test_acc_last", 50.0)
        if status != "RUNNING":
            client.set_terminated(run.info.run_id, status)
        runs[(role, loss, seed)] = run.info.run_id

    for key in FINISHED:
        log(*key)
    log("student", "crd", 0, status="FAILED")
    log("student", "crd", 1, status="RUNNING")
    return SimpleNamespace(data=data, store=store, uri=uri, client=client, runs=runs,
                           tmp=tmp_path)


def probe(world, targets=("stl10", "tinyimagenet"), **kwargs):
    return run_probe(SUITE, list(targets), data_dir=world.data, tracking_uri=world.uri,
                     store=world.store, device="cpu", settings=SETTINGS, progress=False,
                     **kwargs)


def probe_runs(world):
    experiment = world.client.get_experiment_by_name(f"kdbench/{SUITE}-probe")
    return world.client.search_runs([experiment.experiment_id], max_results=1000)


def test_probe_records_every_finished_network_in_mlflow_and_the_transfer_table(world):
    hashes = {path: sha256_of(path) for path in world.store.rglob("*.safetensors")}
    outcome = probe(world)
    assert {r.status for r in outcome.results} == {"FINISHED"}
    probed = {(r.source.role, r.source.loss, int(r.source.seed), r.target)
              for r in outcome.results}
    assert probed == {(*key, target) for key in FINISHED for target in ("stl10", "tinyimagenet")}
    assert {path: sha256_of(path) for path in hashes} == hashes  # weights never written

    runs = {run.info.run_id: run for run in probe_runs(world)}
    assert len(runs) == 2 * len(FINISHED)
    for result in outcome.results:
        run = runs[result.run_id]
        tags, params = run.data.tags, run.data.params
        assert run.info.status == "FINISHED"
        assert tags["source_run_id"] == world.runs[(result.source.role, result.source.loss,
                                                    int(result.source.seed))]
        assert (tags["kdbench.role"], tags["source_role"]) == ("probe", result.source.role)
        assert (tags["dataset"], tags["source_dataset"]) == (result.target, "cifar100")
        assert (tags["teacher"], tags["loss"], tags["seed"]) == (
            TEACHER, result.source.loss, result.source.seed)
        assert params["probe.optimizer"] == "sgd" and params["probe.epochs"] == "3"
        assert params["probe.weight_decay"] == "0.0"
        assert params["probe.train_size"] == {"stl10": "20", "tinyimagenet": "12"}[result.target]
        assert params["probe.image_size"] == "32" and "cifar100" in params["probe.normalization"]
        assert run.data.metrics["probe_acc"] == pytest.approx(result.probe_acc)
        assert 0.0 <= result.probe_acc <= 100.0
        dim = {TEACHER: 96, STUDENT: 32}[result.source.arch]
        assert run.data.metrics["embedding_dim"] == dim
        cache = Store(world.store).embeddings(result.source.run_id, result.target)
        assert cache.is_file()

    frame = collect_probe_runs(SUITE, world.uri)  # role: the probed network's
    assert sorted(frame["role"]) == sorted(r.source.role for r in outcome.results)
    assert dict(zip(frame["run_id"], frame["probe_acc"])) == pytest.approx(
        {r.run_id: r.probe_acc for r in outcome.results})
    out = world.tmp / "transfer"
    table = write_transfer_leaderboard(SUITE, world.uri, out, formats="md,csv,tex")
    frame = pd.read_csv(table.paths["csv"])
    for target in ("stl10", "tinyimagenet"):
        accs = {(r.source.loss, r.source.seed): r.probe_acc for r in outcome.results
                if r.target == target}
        rows = frame[frame["dataset"] == target].set_index("loss")
        assert rows.loc["sp", "mean"] == pytest.approx((accs[("sp", "0")] + accs[("sp", "1")]) / 2)
        assert rows.loc["student", "n"] == 2 and rows.loc["kd", "n"] == 1
        assert rows.loc["teacher", "mean"] == pytest.approx(accs[("teacher", "0")])
        assert set(rows.index) == {"teacher", "student", "kd", "sp"}  # no failed/running crd
    markdown = table.paths["md"].read_text()
    assert "Linear probe, cifar100 -> STL-10" in markdown
    assert "Linear probe, cifar100 -> TinyImageNet" in markdown
    assert markdown.index("STL-10") < markdown.index("TinyImageNet")
    assert "SGD momentum 0.9, lr 0.1 cosine to 0 over 3 epochs" in markdown
    assert "\\begin{tabular}" in table.paths["tex"].read_text()


def test_second_probe_is_skipped_and_cached_embeddings_are_reused_until_weights_change(
        world, monkeypatch):
    first = probe(world, ["stl10"])
    again = probe(world, ["stl10"])
    assert {r.status for r in again.results} == {"SKIPPED"}
    assert len(probe_runs(world)) == len(FINISHED)
    accuracy = {r.source.run_id: r.probe_acc for r in first.results}
    assert {r.source.run_id: r.probe_acc for r in again.results} == accuracy

    def must_not_extract(*args, **kwargs):
        raise AssertionError("extracted although the embeddings are cached")
    monkeypatch.setattr(probe_run, "extract_embeddings", must_not_extract)
    forced = probe(world, ["stl10"], force=True)
    assert {r.status for r in forced.results} == {"FINISHED"}
    assert all(r.embeddings_cached for r in forced.results)
    assert {r.source.run_id: r.probe_acc for r in forced.results} == accuracy  # deterministic

    retrained = world.runs[("student", "sp", 0)]
    weights = Store(world.store).student_weights("sp0student")
    save_network(weights, STUDENT, seed=99)
    changed = probe(world, ["stl10"])
    failed = {r.source.run_id: r for r in changed.results if r.status == "FAILED"}
    assert set(failed) == {retrained} and "AssertionError" in failed[retrained].reason
    assert {r.status for r in changed.results if r.source.run_id != retrained} == {"SKIPPED"}


def test_cli_probe_and_leaderboard_transfer(world, capsys, monkeypatch):
    monkeypatch.setattr(cli, "COMMANDS", ["probe", "leaderboard"])
    common = ["--tracking-uri", world.uri, "--store", str(world.store), "--data-dir",
              str(world.data), "--device", "cpu", "--no-progress"]
    assert cli.main(["probe", SUITE, "--dataset", "tinyimagenet", "--epochs", "2",
                     "--batch-size", "4", *common]) == 0
    printed = capsys.readouterr().out
    assert "6 probed, 0 already done (skipped), 0 failed." in printed
    assert re.search(r"\| tinyimagenet \| digits_cnn_large -> digits_cnn_small \| sp \| 1 \|",
                     printed)
    out = world.tmp / "board"
    assert cli.main(["leaderboard", SUITE, "--transfer", "--tracking-uri", world.uri,
                     "--out", str(out), "--format", "md"]) == 0
    printed = capsys.readouterr().out
    assert "Linear probe, cifar100 -> TinyImageNet" in printed
    assert (out / "leaderboard.md").is_file()

    assert cli.main(["probe", SUITE, "--dataset", "stl-10", *common]) == 2
    assert "Unknown probe data set 'stl-10'" in capsys.readouterr().err
    assert cli.main(["probe", SUITE, "--dataset", "stl10", "--runs", "nope", *common]) == 2
    assert "Run 'nope' is not in suite" in capsys.readouterr().err
    assert cli.main(["probe", SUITE, "--dataset", "digits-shifted", *common]) == 2
    assert "1-channel images but networks trained on 'cifar100' take 3" in \
        capsys.readouterr().err
    assert cli.main(["probe", "nosuch", "--dataset", "stl10", *common]) == 2
    assert cli.main(["leaderboard", "nosuch", "--transfer", "--tracking-uri", world.uri]) == 2
    assert "kdbench probe nosuch" in capsys.readouterr().err


def test_only_the_named_runs_are_probed_and_weights_are_found_or_named(world):
    chosen = world.runs[("student", "kd", 0)]
    outcome = probe(world, ["stl10"], runs=[chosen])
    assert [r.source.run_id for r in outcome.results] == [chosen]
    failed_run = world.runs[("student", "crd", 0)]
    with pytest.raises(UserError, match="FAILED"):
        probe(world, ["stl10"], runs=[failed_run])
    moved = world.tmp / "moved-store"  # tags name the old place: --store finds the files
    world.store.rename(moved)
    world.store = moved
    outcome = probe(world, ["stl10"], runs=[world.runs[("teacher", "teacher", 0)]])
    assert outcome.results[0].status == "FINISHED"
    weights = Store(moved).student_weights("kd0student")
    weights.unlink()
    with pytest.raises(UserError, match=re.escape(str(weights))):
        probe(world, ["stl10"])


def test_transfer_table_shows_crd_table_8_beside_cifar100_probes():
    wrn = Pair("wrn_40_2", "wrn_16_2")
    records = []
    for loss, values in {"student": [69.0, 70.0], "kd": [71.0, 71.4], "sp": [71.5, 71.9]}.items():
        for seed, value in enumerate(values):
            for source in ("cifar100", "cifar10"):
                records.append({"run_id": f"{loss}{seed}{source}", "status": "FINISHED",
                                "start_time": seed, "role": "student", "dataset": "stl10",
                                "source_dataset": source, "teacher": wrn.teacher,
                                "student": wrn.student, "loss": loss, "seed": str(seed),
                                "scaled": "false", "probe_acc": value, "failure_reason": "",
                                "probe_settings": "s"})
    board = build_transfer_board(pd.DataFrame(records), "x", published=load_published(),
                                 show_published=True)
    cifar100, cifar10 = sorted(board.tables, key=lambda t: t.title, reverse=True)
    assert cifar100.title == "Linear probe, cifar100 -> STL-10 (test split)"
    published = {row: cifar100.cell(row, wrn).published.value for row in ("student", "kd", "sp")}
    assert published == {"student": 69.7, "kd": 70.9, "sp": 71.3}  # CRD Table 8
    assert cifar100.cell("kd", wrn).summary.mean == pytest.approx(71.2)
    assert cifar100.cell("kd", wrn).diff == pytest.approx(0.3)
    assert cifar10.cell("kd", wrn).published is None  # Table 8 probes CIFAR-100 students only
