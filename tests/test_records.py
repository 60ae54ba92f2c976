"""Run identity and records: canonical model names, derived cohort keys and teacher specs, and
the one rule for which runs count, checked on runs written to a real MLflow SQLite store.

A scaled rerun or a reweighted run of one seed must never change the suite's protocol cell; the
leaderboard, validate and the probe must pick the same run for the same configuration."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from benchmark.config import load_suite
from benchmark.leaderboard import write_leaderboard
from benchmark.plan import (MEMBER_FIELDS, NON_IDENTITY_FIELDS, PlanOptions, RunSpec,
                            expand_suite, parse_only, teacher_specs)
from benchmark.records import RunRecord, Status, select
from benchmark.recipes import get_recipe
from benchmark.store import Store
from benchmark.teachers import TeacherStore
from benchmark.tracking import Tracker

PUBLISHED_NAMES = """
name: aliases
recipe: crd-cifar
datasets: [cifar100]
pairs:
  - {teacher: ResNet50, student: MobileNetV2}
  - {teacher: resnet32x4, student: ShuffleV1}
  - {teacher: resnet32x4, student: ShuffleV2}
losses: [sp, kd]
seeds: [0, 1]
"""


def _suite(tmp_path: Path, text: str, name: str = "aliases") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def test_alias_and_canonical_name_are_one_run(tmp_path):
    aliased = expand_suite(load_suite(str(_suite(tmp_path, PUBLISHED_NAMES))))
    canonical_text = (PUBLISHED_NAMES.replace("ResNet50", "resnet50")
                      .replace("MobileNetV2", "mobilenetv2").replace("ShuffleV1", "shufflev1")
                      .replace("ShuffleV2", "shufflev2").replace("name: aliases", "name: canon"))
    canonical = expand_suite(load_suite(str(_suite(tmp_path, canonical_text, "canon"))))
    assert [s.config_hash for s in aliased] == [s.config_hash for s in canonical]
    assert {s.student for s in aliased} == {"mobilenetv2", "shufflev1", "shufflev2"}
    assert {s.lr for s in aliased} == {0.01}  # PROTOCOL §1's small-student rate, not 0.05
    store = Store(tmp_path / "store")
    for a, c in zip(aliased, canonical):
        assert store.checkpoint(a.config_hash) == store.checkpoint(c.config_hash)
        assert TeacherStore(store.root).weights_path(a.teacher_spec()) == \
            TeacherStore(store.root).weights_path(c.teacher_spec())
    assert teacher_specs(aliased)[0].student == "resnet50"
    direct = RunSpec(suite="x", role="student", dataset="cifar100", teacher="ResNet50",
                     student="MobileNetV2", loss="kd", terms=(("ce", 0.1), ("kd", 0.9)), seed=0,
                     recipe=get_recipe("crd-cifar"))
    assert direct.student == "mobilenetv2" and direct.teacher == "resnet50"


def test_only_with_an_alias_selects_the_same_runs(tmp_path):
    suite = load_suite(str(_suite(tmp_path, PUBLISHED_NAMES)))
    by_alias = expand_suite(suite, PlanOptions(only=parse_only("student=MobileNetV2")))
    by_name = expand_suite(suite, PlanOptions(only=parse_only("student=mobilenetv2")))
    assert by_alias and [s.config_hash for s in by_alias] == [s.config_hash for s in by_name]
    assert {s.student for s in by_alias} == {"mobilenetv2"}
    assert len(expand_suite(suite, PlanOptions(only=parse_only("teacher=ResNet50")))) == 4


def test_loss_labels_are_parsed_once_into_terms(tmp_path):
    suite = load_suite(str(_suite(tmp_path, PUBLISHED_NAMES)))
    assert [(c.label, c.terms) for c in suite.losses] == [
        ("sp", {"ce": 1.0, "sp": "default"}), ("kd", {"ce": 0.1, "kd": 0.9})]


def _spec(**changes) -> RunSpec:
    base = dict(suite="s", role="student", dataset="digits", teacher="digits_cnn_large",
                student="digits_cnn_small", loss="sp", terms=(("ce", 1.0), ("sp", 3000.0)),
                seed=0, recipe=get_recipe("digits"))
    return RunSpec(**{**base, **changes})


#: A different value for every RunSpec field (a new field must be added here, or this fails).
OTHER_VALUES = {
    "suite": "other", "role": "teacher", "dataset": "cifar100", "teacher": "resnet32x4",
    "student": "digits_resnet_tiny", "loss": "kd", "terms": (("ce", 0.1), ("kd", 0.9)),
    "hparams": (("sp", (("layers", "last"),)),), "seed": 1, "teacher_seed": 1,
    "recipe": get_recipe("digits").scaled_to(epochs=2), "val_fraction": 0.1, "split_seed": 3,
    "amp": "bf16", "channels_last": True, "compile": True, "train_fraction": 0.2,
    "teacher_init": "random", "teacher_recipe": get_recipe("digits-labelled"),
}


@pytest.mark.parametrize("name", sorted(RunSpec.model_fields))
def test_every_field_but_the_members_own_joins_the_cohort_key(name):
    assert name in OTHER_VALUES, f"RunSpec.{name} is new: give it a value in OTHER_VALUES"
    base, changed = _spec(), _spec(**{name: OTHER_VALUES[name]})
    shared = name not in MEMBER_FIELDS | NON_IDENTITY_FIELDS
    assert (base.cohort_key() != changed.cohort_key()) == shared
    assert (base.config_hash != changed.config_hash) == (name not in NON_IDENTITY_FIELDS)


def test_a_new_field_joins_the_cohort_key_and_the_teacher_spec_by_itself():
    class WithNewSetting(RunSpec):  # a setting RunSpec does not have (yet)
        new_setting: bool = False

    fields = {k: getattr(_spec(), k) for k in RunSpec.model_fields}
    plain, changed = WithNewSetting(**fields), WithNewSetting(**fields, new_setting=True)
    assert plain.cohort_key() != changed.cohort_key()
    assert plain.config_hash != changed.config_hash
    assert changed.teacher_spec().new_setting is True  # inherited, not hand-copied


def test_teacher_spec_has_one_constructor():
    spec = _spec(teacher_seed=2, val_fraction=0.1, amp="bf16")
    teacher = spec.teacher_spec()
    assert teacher == RunSpec.for_teacher("digits_cnn_large", 2, suite="s", dataset="digits",
                                          recipe=spec.recipe, val_fraction=0.1, split_seed=0,
                                          amp="bf16", channels_last=False)
    assert (teacher.role, teacher.loss, teacher.terms, teacher.seed) == (
        "teacher", "teacher", (("ce", 1.0),), 2)


# ----- the one rule, on a real MLflow store -----
def _log(tracker: Tracker, spec: RunSpec, value: float, weights: str = "") -> str:
    run_id = tracker.start_run(spec.suite, spec, {"device": "cpu"})
    tracker.log_metrics(run_id, {"test_acc_last": value, "test_acc_best": value}, step=1)
    if weights:
        tracker.set_tags(run_id, {"weights_path": weights})
    tracker.finish(run_id, Status.FINISHED)
    return run_id


@pytest.fixture()
def digits_store(tmp_path):
    """The digits suite's student runs (seeds 0-4) and teacher with known accuracies."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri)
    specs = expand_suite(load_suite("digits"))
    values = {}
    for i, spec in enumerate(specs):
        values[spec.config_hash] = 90.0 + (i % 7) * 0.5 + spec.seed * 0.1
        _log(tracker, spec, values[spec.config_hash], weights=str(tmp_path / f"{i}.st"))
    for teacher in teacher_specs(specs):
        _log(tracker, teacher, 99.0, weights=str(tmp_path / "teacher.st"))
    return tracker, uri, specs, values


def _cell(board, loss: str, student: str):
    table = board.tables[0]
    pair = next(p for p in table.pairs if p.student == student)
    return table.cell(loss, pair)


def test_scaled_and_reweighted_runs_never_change_the_protocol_cell(digits_store, tmp_path):
    tracker, uri, specs, values = digits_store
    before = write_leaderboard("digits", uri, tmp_path / "before", formats="csv").board
    sp_cell = _cell(before, "sp", "digits_cnn_small")
    assert sp_cell.summary.n == len(load_suite("digits").seeds)

    seed0 = next(s for s in specs if s.loss == "sp" and s.seed == 0
                 and s.student == "digits_cnn_small")
    scaled = seed0.model_copy(update={"recipe": seed0.recipe.scaled_to(epochs=2)})
    reweighted = seed0.model_copy(update={"terms": (("ce", 1.0), ("sp", 1000.0))})
    _log(tracker, scaled, 11.0)
    _log(tracker, reweighted, 22.0)

    after = write_leaderboard("digits", uri, tmp_path / "after", formats="csv").board
    cell = _cell(after, "sp", "digits_cnn_small")
    assert cell.values == sp_cell.values and cell.summary.n == sp_cell.summary.n
    assert cell.config.setting_hash == seed0.setting_hash
    assert f"sp={seed0.term_weights['sp']:g}" in cell.config.weights
    assert "30 ep" in cell.config.recipe
    reasons = [r.reason for r in after.tables[0].excluded]
    assert any(r.startswith("other configuration (2 ep, scaled)") for r in reasons)
    assert any(r.startswith("other configuration (w=1000)") for r in reasons)

    shown = write_leaderboard("digits", uri, tmp_path / "all", formats="csv",
                              all_configs=True).board
    assert _cell(shown, "sp", "digits_cnn_small").values == sp_cell.values
    assert _cell(shown, "sp (2 ep, scaled)", "digits_cnn_small").values == (11.0,)
    assert _cell(shown, "sp (w=1000)", "digits_cnn_small").values == (22.0,)
    csv = (tmp_path / "all" / "leaderboard.csv").read_text()
    assert "sp (w=1000)" in csv and seed0.setting_hash in csv and "ce=1 sp=1000" in csv


def test_leaderboard_validate_and_probe_pick_the_same_run(digits_store, tmp_path):
    from benchmark.probe.sources import find_sources
    from benchmark.validate import verdicts

    tracker, uri, specs, values = digits_store
    seed1 = next(s for s in specs if s.loss == "sp" and s.seed == 1
                 and s.student == "digits_cnn_small")
    rerun_id = _log(tracker, seed1, 55.5, weights=str(tmp_path / "rerun.st"))

    records = tracker.records("digits")
    selection = select(records)
    assert selection.get(seed1.config_hash).run_id == rerun_id
    assert any(e.reason.startswith("rerun:") for e in selection.excluded)

    board = write_leaderboard("digits", uri, tmp_path / "lb", formats="csv").board
    assert 55.5 in _cell(board, "sp", "digits_cnn_small").values

    sp_specs = [s for s in specs if s.loss == "sp" and s.student == "digits_cnn_small"]
    [row] = verdicts(sp_specs, tracker, "digits", "sp")
    assert 55.5 in row.baseline

    probed = {s.config_hash: s.run_id for s in find_sources(tracker, "digits")}
    assert probed[seed1.config_hash] == rerun_id
    assert len(probed) == len(specs) + 1  # every counted student once, and the teacher


def test_probe_skips_other_configurations_unless_asked(digits_store, tmp_path):
    from benchmark.probe.sources import find_sources

    tracker, uri, specs, values = digits_store
    scaled = specs[0].model_copy(update={"recipe": specs[0].recipe.scaled_to(epochs=2)})
    scaled_id = _log(tracker, scaled, 1.0, weights=str(tmp_path / "s.st"))
    assert scaled_id not in {s.run_id for s in find_sources(tracker, "digits")}
    assert scaled_id in {s.run_id for s in find_sources(tracker, "digits", all_configs=True)}


def test_runner_skips_exactly_the_counted_runs(digits_store, tmp_path):
    from benchmark.runner import RunOptions, make_plan

    tracker, uri, specs, values = digits_store
    plan = make_plan(load_suite("digits"), PlanOptions(), RunOptions(store=str(tmp_path)), tracker)
    assert len(plan.done) == len(specs) and not plan.todo
    scaled = make_plan(load_suite("digits"), PlanOptions(epochs=2, seeds=[0]),
                       RunOptions(store=str(tmp_path)), tracker)
    assert not scaled.done and len(scaled.todo) == len(specs) // len(load_suite("digits").seeds)


def test_records_from_mlflow_carry_the_spec(digits_store):
    tracker, uri, specs, values = digits_store
    by_hash = {r.config_hash: r for r in tracker.records("digits")}
    record = by_hash[specs[0].config_hash]
    assert isinstance(record, RunRecord) and record.spec == specs[0]
    assert record.setting_hash == specs[0].setting_hash
    assert math.isclose(record.metric("test_acc_last"), values[specs[0].config_hash])
    assert record.tag("env.cpu_model") and record.tag("env.torch_threads")
