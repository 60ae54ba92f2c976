"""The digits track with headroom and its controls (issue 14, points 5-6): students on a
labelled share of the training split (``student_train_fraction``) while the teacher keeps all
of it and its own recipe (``teacher_recipe``), the random-teacher control (``teacher_init:
random``) and label smoothing as a loss; all three are RunSpec fields, so they enter the config
hash, cohort key and teacher spec, and runs recorded before them keep their hashes."""

from __future__ import annotations

import textwrap

import pytest
import torch
import torch.nn.functional as F
import yaml

from benchmark.config import load_suite
from benchmark.errors import UserError
from benchmark.plan import (DEFAULT_OMITTED_FIELDS, NON_IDENTITY_FIELDS, RunSpec, _digest,
                            expand_suite, group_cohorts, teacher_specs)
from benchmark.recipes import get_recipe

SUITE = """
name: track
recipe: digits-labelled
teacher_recipe: digits
student_train_fraction: 0.2
datasets: [digits]
pairs:
  - {teacher: digits_cnn_large, student: digits_cnn_small}
losses:
  - student
  - kd
  - {label: kd-random-teacher, terms: {ce: 0.1, kd: 0.9}, teacher_init: random}
seeds: [0, 1]
"""


def write_suite(tmp_path, text=SUITE, name="track.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def base_spec(**changes) -> RunSpec:
    fields = dict(suite="s", role="student", dataset="digits", teacher="digits_cnn_large",
                  student="digits_cnn_small", loss="kd", terms=(("ce", 0.1), ("kd", 0.9)),
                  seed=0, recipe=get_recipe("digits"))
    return RunSpec(**{**fields, **changes})


def test_new_fields_at_their_defaults_keep_every_recorded_hash():
    spec = base_spec()
    old = spec.model_dump(mode="json", exclude=set(NON_IDENTITY_FIELDS | DEFAULT_OMITTED_FIELDS))
    assert spec.config_hash == _digest(old)  # the hash a run had before these fields existed
    changed = {base_spec(train_fraction=0.2).config_hash, base_spec(teacher_init="random")
               .config_hash, base_spec(teacher_recipe=get_recipe("digits-labelled")).config_hash}
    assert len(changed) == 3 and spec.config_hash not in changed
    assert base_spec(train_fraction=0.2).setting_hash != spec.setting_hash


def test_teacher_keeps_the_full_split_and_its_recipe_and_inherits_its_init():
    spec = base_spec(train_fraction=0.2, recipe=get_recipe("digits-labelled"),
                     teacher_recipe=get_recipe("digits"))
    teacher = spec.teacher_spec()
    assert teacher.train_fraction == 1.0 and teacher.recipe.name == "digits"
    assert teacher.teacher_recipe is None
    # the teacher of the digits main job: the same run (and hash) as before the track existed
    assert teacher.config_hash == base_spec().teacher_spec().config_hash
    assert base_spec(teacher_init="random").teacher_spec().teacher_init == "random"


def test_suite_fields_reach_the_plan_cohorts_and_teachers(tmp_path):
    suite = load_suite(str(write_suite(tmp_path)))
    runs = expand_suite(suite)
    assert len(runs) == 6
    assert {(r.train_fraction, r.recipe.name, r.teacher_recipe.name) for r in runs} == \
        {(0.2, "digits-labelled", "digits")}
    assert {r.loss: r.teacher_init for r in runs} == {
        "student": "trained", "kd": "trained", "kd-random-teacher": "random"}
    # the random teacher's runs train apart (another teacher forward), two cohorts per seed
    assert sorted(len(c.runs) for c in group_cohorts(runs)) == [1, 1, 2, 2]
    # an untrained teacher needs no training run: one teacher for the whole suite
    [teacher] = teacher_specs(runs)
    assert (teacher.recipe.name, teacher.train_fraction, teacher.teacher_init) == (
        "digits", 1.0, "trained")


@pytest.mark.parametrize("field, value, words", [
    ("teacher_init", "untrained", r"losses.2.teacher_init.*Allowed: 'trained' \(the stored"),
    ("student_train_fraction", "0", "student_train_fraction"),
    ("teacher_recipe", "nosuch", "teacher_recipe"),
])
def test_bad_track_fields_are_reported(tmp_path, field, value, words):
    text = SUITE.replace("teacher_init: random", f"teacher_init: {value}") \
        if field == "teacher_init" else SUITE.replace(
            {"student_train_fraction": "student_train_fraction: 0.2",
             "teacher_recipe": "teacher_recipe: digits"}[field], f"{field}: {value}")
    with pytest.raises(UserError, match=words):
        load_suite(str(write_suite(tmp_path, text)))


def test_labelled_part_is_a_stratified_seeded_share_and_val_test_do_not_move():
    from benchmark.data import load_splits

    full = load_splits("digits", None, val_fraction=0.1, split_seed=0)
    part = load_splits("digits", None, val_fraction=0.1, split_seed=0, train_fraction=0.2)
    assert len(full.train) == 1294 and len(part.train) == round(0.2 * 1294) == 259
    counts = torch.bincount(part.train.labels, minlength=10)
    assert int(counts.min()) >= 25 and int(counts.max()) <= 27  # ~10% of 259 per class
    rows = {bytes(img.numpy()) for img in full.train.images}
    assert all(bytes(img.numpy()) in rows for img in part.train.images)
    assert torch.equal(part.val.images, full.val.images)
    assert torch.equal(part.test.images, full.test.images)
    again = load_splits("digits", None, val_fraction=0.1, split_seed=0, train_fraction=0.2)
    assert torch.equal(again.train.images, part.train.images)
    with pytest.raises(UserError, match="train_fraction"):
        load_splits("digits", None, train_fraction=0.0)


def test_label_smoothing_term_is_torch_label_smoothing_rescaled():
    from losses import create_weighted_loss, expand_loss_label, loss_class
    from losses.label_smoothing import weight_for_eps

    assert expand_loss_label("label_smoothing") == {"ce": 1.0, "label_smoothing": "default"}
    assert loss_class("label_smoothing").default_weight == pytest.approx(0.1 / 0.9)
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(8, 10, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, 10, (8,), generator=generator)
    for eps in (0.1, 0.3):
        weight = weight_for_eps(eps)
        loss = create_weighted_loss({"ce": 1.0, "label_smoothing": weight}, {}, {})
        total, _ = loss({"logits": logits}, {}, labels=labels)
        expected = (1 + weight) * F.cross_entropy(logits, labels, label_smoothing=eps)
        assert float(total) == pytest.approx(float(expected), rel=1e-12)
    assert loss.teacher_tap_names == []


def test_untrained_teacher_is_seeded_and_leaves_the_rng_alone():
    from benchmark.teachers import untrained_teacher

    spec = base_spec(teacher_init="random").teacher_spec()
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = untrained_teacher(spec, 10, 1)
    assert torch.equal(torch.get_rng_state(), before)
    b = untrained_teacher(spec, 10, 1)
    c = untrained_teacher(spec.model_copy(update={"seed": 1}), 10, 1)
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    assert any(not torch.equal(a.state_dict()[k], c.state_dict()[k])
               for k in a.state_dict() if a.state_dict()[k].is_floating_point())
    assert not a.training and not any(p.requires_grad for p in a.parameters())


def test_random_teacher_cohort_trains_without_a_stored_teacher(tmp_path):
    from benchmark.engine import RunEnv, train_cohort
    from benchmark.plan import PlanOptions

    suite = load_suite(str(write_suite(tmp_path)))
    [spec] = [r for r in expand_suite(suite, PlanOptions(epochs=1, seeds=[0]))
              if r.teacher_init == "random"]
    env = RunEnv(device=torch.device("cpu"), store=tmp_path / "store")
    [result] = train_cohort([spec], env)  # the store is empty: nothing to load
    assert result.status == "FINISHED" and 0 <= result.test_acc_last <= 100
    assert not list((tmp_path / "store").glob("teachers/**/*.safetensors"))


def test_the_main_job_suite_compares_tuned_losses_and_both_controls():
    suite = load_suite("digits")
    runs = expand_suite(suite)
    assert len(suite.seeds) == 8 and len(runs) == 2 * 9 * len(suite.seeds)
    entries = yaml.safe_load(open(suite.tuned_weights))["entries"]
    shipped = {(e["student"], e["loss"]): e["weight"] for e in entries}
    for spec in runs:
        for term, weight in spec.terms:
            if term != "ce":
                label = "kd" if spec.loss == "kd-random-teacher" else spec.loss
                assert weight == pytest.approx(shipped[(spec.student, label)])
    assert len({(e["trials"], e["epochs"], e["recipe"]) for e in entries}) == 1  # equal budgets
    assert {r.train_fraction for r in runs} == {0.2}
    [teacher] = teacher_specs(runs)
    assert (teacher.recipe.name, teacher.train_fraction) == ("digits", 1.0)
