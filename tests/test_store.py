"""benchmark.store.Store: the one default rule and the exact on-disk layout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmark.store import DEFAULT_STORE, STORE_ENV, Store


# ---- the default rule -----------------------------------------------------------------------

def test_explicit_store_wins_over_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "from-env"))
    assert Store.resolve(tmp_path / "given").root == tmp_path / "given"
    assert Store.resolve(str(tmp_path / "given")).root == tmp_path / "given"


def test_environment_variable_when_no_store_is_given(tmp_path, monkeypatch):
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "from-env"))
    assert Store.resolve().root == tmp_path / "from-env"
    assert Store.resolve(None).root == tmp_path / "from-env"


@pytest.mark.parametrize("env", [None, ""])
def test_default_is_kdbench_store_in_the_working_directory(tmp_path, monkeypatch, env):
    if env is None:
        monkeypatch.delenv(STORE_ENV, raising=False)
    else:
        monkeypatch.setenv(STORE_ENV, env)
    monkeypatch.chdir(tmp_path)
    store = Store.resolve()
    assert DEFAULT_STORE == "kdbench-store" and STORE_ENV == "KDBENCH_STORE"
    assert store.root == Path("kdbench-store")
    assert store.absolute().root == tmp_path.resolve() / "kdbench-store"
    assert store.absolute().root.is_absolute()


def test_resolve_passes_a_store_through_and_store_is_path_like(tmp_path):
    store = Store(tmp_path)
    assert Store.resolve(store) is store
    assert Store(store) == store and Path(store) == tmp_path
    assert os.fspath(store) == str(store) == str(tmp_path)


def test_cli_commands_use_the_default_rule(tmp_path, monkeypatch):
    import argparse

    from benchmark.commands import probe, run, teachers

    monkeypatch.setenv(STORE_ENV, str(tmp_path / "env-store"))
    parser = argparse.ArgumentParser()
    run.add_common_run_options(parser)
    assert run.run_options_from(parser.parse_args([])).store == str(tmp_path / "env-store")
    given = parser.parse_args(["--store", str(tmp_path / "given")])
    assert run.run_options_from(given).store == str(tmp_path / "given")
    assert teachers._store(argparse.Namespace(store=None)) == Store(tmp_path / "env-store")
    parser = argparse.ArgumentParser()
    probe.add_probe_options(parser)
    assert "$KDBENCH_STORE or ./kdbench-store" in parser.format_help().replace("\n", " ")


# ---- the layout -----------------------------------------------------------------------------

def test_every_path_has_its_exact_place(tmp_path):
    store = Store(tmp_path)
    assert store.root == tmp_path
    assert store.teachers_dir == tmp_path / "teachers"
    assert store.students_dir == tmp_path / "students"
    assert store.checkpoints_dir == tmp_path / "checkpoints"
    assert store.embeddings_dir == tmp_path / "embeddings"
    assert store.locks_dir == tmp_path / "locks"
    assert (store.teacher_weights("cifar100", "resnet32x4", 0, "abc123")
            == tmp_path / "teachers" / "cifar100" / "resnet32x4-seed0-abc123.safetensors")
    assert (store.teacher_meta("cifar100", "resnet32x4", 2, "abc123")
            == tmp_path / "teachers" / "cifar100" / "resnet32x4-seed2-abc123.json")
    assert store.student_weights("abc123") == tmp_path / "students" / "abc123.safetensors"
    assert store.checkpoint("abc123") == tmp_path / "checkpoints" / "abc123.pt"
    assert store.embeddings("run1", "stl10") == tmp_path / "embeddings" / "run1-stl10.pt"
    assert store.lock("tune-teachers") == tmp_path / "locks" / "tune-teachers.lock"


def test_teacher_store_keeps_its_file_names(tmp_path):
    from types import SimpleNamespace

    from benchmark.teachers import TeacherStore

    # What TeacherStore reads of a teacher's RunSpec: its data set, arch, seed and config hash.
    spec = SimpleNamespace(dataset="digits", student="digits_cnn_large", seed=1,
                           config_hash="0123abcd")
    teachers = TeacherStore(tmp_path)
    stem = f"digits_cnn_large-seed1-{spec.config_hash}"
    assert teachers.root == tmp_path / "teachers"
    assert teachers.weights_path(spec) == tmp_path / "teachers" / "digits" / f"{stem}.safetensors"
    assert teachers.meta_path(spec) == tmp_path / "teachers" / "digits" / f"{stem}.json"
    assert TeacherStore(Store(tmp_path)).weights_path(spec) == teachers.weights_path(spec)
    assert teachers.list() == []
    teachers.meta_path(spec).parent.mkdir(parents=True)
    teachers.meta_path(spec).write_text('{"arch": "digits_cnn_large"}')
    assert teachers.list() == [{"arch": "digits_cnn_large"}]


def test_teacher_meta_files_are_sorted_and_only_metadata(tmp_path):
    store = Store(tmp_path)
    b = store.teacher_meta("stl10", "b", 0, "h2")
    a = store.teacher_meta("cifar100", "a", 0, "h1")
    for path in (b, a, store.teacher_weights("cifar100", "a", 0, "h1")):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
    assert store.teacher_meta_files() == [a, b]
    assert Store(tmp_path / "empty").teacher_meta_files() == []


# ---- operations -----------------------------------------------------------------------------

def test_remove_run_files_deletes_checkpoint_and_student_weights_only(tmp_path):
    store = Store(tmp_path)
    files = [store.checkpoint("h1"), store.student_weights("h1"), store.checkpoint("h2"),
             store.student_weights("h2"), store.teacher_weights("digits", "a", 0, "h1")]
    for path in files:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    store.remove_run_files("h1")
    assert [p.exists() for p in files] == [False, False, True, True, True]
    store.remove_run_files("h1")  # nothing left to remove: no error
    store.remove_run_files("never-trained")


def test_relocate_maps_a_recorded_path_onto_this_store(tmp_path):
    store = Store(tmp_path / "new")
    old = Store("/elsewhere/old-store")
    assert store.relocate(old.student_weights("h1")) == store.student_weights("h1")
    assert (store.relocate(old.teacher_weights("cifar100", "wrn_40_2", 0, "h2"))
            == store.teacher_weights("cifar100", "wrn_40_2", 0, "h2"))
    assert (store.relocate(str(old.teacher_meta("cifar100", "wrn_40_2", 0, "h2")))
            == store.teacher_meta("cifar100", "wrn_40_2", 0, "h2"))
    assert store.relocate("kdbench-store/students/h3.safetensors") == store.student_weights("h3")
    # The folder names elsewhere in the path do not confuse it: only the layout's places count.
    tricky = Path("/home/students/teachers/store/students/h4.safetensors")
    assert store.relocate(tricky) == store.student_weights("h4")
    for outside in ("/tmp/weights.safetensors", "h5.safetensors", "/data/teachers/x.pt"):
        assert store.relocate(outside) == Path(outside)


def test_probe_resolve_weights_finds_a_moved_store(tmp_path):
    from types import SimpleNamespace

    from benchmark.errors import UserError
    from benchmark.probe.sources import resolve_weights

    old, new = Store(tmp_path / "old"), Store(tmp_path / "new")
    moved = new.student_weights("h1")
    moved.parent.mkdir(parents=True)
    moved.write_bytes(b"x")
    source = SimpleNamespace(weights_path=str(old.student_weights("h1")), run_id="r1",
                             describe=lambda: "kd student")
    assert resolve_weights(source, new) == moved
    assert resolve_weights(source, new.root) == moved
    with pytest.raises(UserError, match="missing"):
        resolve_weights(source, None)
