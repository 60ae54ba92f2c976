"""Suite files: validation errors (exit 2 with file, field, given, allowed), expansion into runs,
config hashes and cohorts."""

from __future__ import annotations

import textwrap

import pytest

from benchmark.cli import main
from benchmark.config import load_suite
from benchmark.errors import UserError
from benchmark.plan import PlanOptions, expand_suite, group_cohorts, parse_only, teacher_specs

GOOD = """
name: tiny
recipe: digits
datasets: [digits]
pairs:
  - {teacher: digits_cnn_large, student: digits_cnn_small}
  - {teacher: digits_cnn_large, student: digits_resnet_tiny}
losses: [student, sp, kd, sp+kd]
seeds: [0, 1]
"""


def write(tmp_path, text: str):
    path = tmp_path / "suite.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_builtin_suites_load():
    for name in ("digits", "cifar100-crd", "cifar100-quick", "imagenet-r34-r18"):
        suite = load_suite(name)
        assert suite.name == name
    crd = load_suite("cifar100-crd")
    assert len(crd.pairs) == 13
    runs = expand_suite(crd)
    # 7 same-family pairs x 5 seeds + 6 cross-family pairs x 3 seeds, 13 loss rows each.
    assert len(runs) == (7 * 5 + 6 * 3) * 13


@pytest.mark.parametrize("edit, field, given", [
    (("sp, kd", "sp, nosuchloss"), "losses.2", "nosuchloss"),
    (("digits_cnn_small}", "resnet_nope}"), "pairs.0.student", "resnet_nope"),
    (("seeds: [0, 1]", "seeds: [0, 0]"), "seeds", "[0, 0]"),
    (("seeds: [0, 1]", "seeds: []"), "seeds", "[]"),
    (("seeds: [0, 1]", "seeds: [-1]"), "seeds", "[-1]"),
    (("datasets: [digits]", "datasets: [mnist]"), "datasets.0", "mnist"),
    (("datasets: [digits]\n", ""), "datasets", "(missing)"),
    (("recipe: digits", "recipe: fast"), "recipe", "fast"),
])
def test_invalid_suite_exit_2_with_message(tmp_path, capsys, edit, field, given):
    path = write(tmp_path, GOOD.replace(*edit))
    code = main(["run", str(path), "--dry-run", "--tracking-uri", f"sqlite:///{tmp_path}/m.db"])
    err = capsys.readouterr().err
    assert code == 2
    assert str(path) in err and f"'{field}'" in err and given in err
    assert "Traceback" not in err


def test_negative_weight_is_rejected(tmp_path):
    text = GOOD.replace("losses: [student, sp, kd, sp+kd]",
                        "losses:\n  - {label: sp, terms: {ce: 1, sp: -3}}")
    with pytest.raises(UserError, match=r"losses\.0\.terms.*-3"):
        load_suite(str(write(tmp_path, text)))


def test_unknown_field_lists_the_allowed_ones(tmp_path):
    with pytest.raises(UserError, match=r"'epochz'.*Allowed: only the fields name"):
        load_suite(str(write(tmp_path, GOOD + "epochz: 3\n")))


def test_expansion_terms_follow_protocol(tmp_path):
    suite = load_suite(str(write(tmp_path, GOOD)))
    runs = expand_suite(suite)
    assert len(runs) == 2 * 4 * 2
    by_label = {r.loss: dict(r.terms) for r in runs}
    assert by_label["student"] == {"ce": 1.0}
    assert by_label["kd"] == {"ce": 0.1, "kd": 0.9}
    assert by_label["sp"] == {"ce": 1.0, "sp": 3000.0}
    assert by_label["sp+kd"] == {"ce": 1.0, "kd": 1.0, "sp": 3000.0}


def test_config_hash_is_stable_and_sensitive(tmp_path):
    suite = load_suite(str(write(tmp_path, GOOD)))
    a = expand_suite(suite)
    b = expand_suite(suite)
    assert [r.config_hash for r in a] == [r.config_hash for r in b]
    assert len({r.config_hash for r in a}) == len(a)
    scaled = expand_suite(suite, PlanOptions(epochs=3))
    assert all(r.scaled for r in scaled)
    assert {r.config_hash for r in scaled}.isdisjoint({r.config_hash for r in a})
    # The suite name is not part of the hash: the same run in two suites is the same run.
    renamed = suite.model_copy(update={"name": "other"})
    assert [r.config_hash for r in expand_suite(renamed)] == [r.config_hash for r in a]


def test_cohorts_share_dataset_teacher_seed(tmp_path):
    suite = load_suite(str(write(tmp_path, GOOD)))
    cohorts = group_cohorts(expand_suite(suite))
    assert len(cohorts) == 2  # one teacher x two seeds
    for cohort in cohorts:
        assert len({r.seed for r in cohort.runs}) == 1
        assert len(cohort.runs) == 2 * 4
    assert len(teacher_specs(expand_suite(suite))) == 1


def test_only_filter_and_seed_override(tmp_path):
    suite = load_suite(str(write(tmp_path, GOOD)))
    only = parse_only("loss=sp,student=digits_cnn_small")
    runs = expand_suite(suite, PlanOptions(only=only, seeds=[7]))
    assert [(r.loss, r.student, r.seed) for r in runs] == [("sp", "digits_cnn_small", 7)]
    with pytest.raises(UserError, match="--only key 'colour'"):
        parse_only("colour=red")


def test_scaled_recipe_moves_milestones():
    from benchmark.recipes import get_recipe

    recipe = get_recipe("crd-cifar")
    assert recipe.milestones == (150, 180, 210) and recipe.lr_for("mobilenetv2") == 0.01
    assert recipe.lr_for("resnet8x4") == 0.05 and not recipe.scaled
    short = recipe.scaled_to(epochs=24)
    assert short.milestones == (15, 18, 21) and short.scaled


def test_baselines_default_to_sp_and_must_be_rows_of_the_suite(tmp_path):
    assert load_suite(str(write(tmp_path, GOOD))).baselines == ["sp"]
    assert load_suite("digits").baselines == ["student", "sp"]
    path = write(tmp_path, GOOD + "baselines: [student, kd]\n")
    assert load_suite(str(path)).baselines == ["student", "kd"]
    for given in ("[dkd]", "[sp, sp]", "[]"):
        with pytest.raises(UserError) as err:
            load_suite(str(write(tmp_path, GOOD + f"baselines: {given}\n")))
        assert "baselines" in str(err.value) and str(path) in str(err.value)
