"""Teacher variance: ``teacher_seeds: [0, 1]`` in a suite plans every student seed with each
teacher (one teacher-training run per teacher seed, cohorts per teacher), and the leaderboard
pairs runs by (teacher seed, seed), with an ANOVA note when a loss's gain depends on the
teacher."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from benchmark.config import load_suite
from benchmark.errors import UserError
from benchmark.leaderboard.build import build_leaderboard
from benchmark.leaderboard.collect import teacher_seed_of
from benchmark.leaderboard.layout import Pair
from benchmark.plan import expand_suite, group_cohorts, teacher_specs

SUITE = """
name: teachers
recipe: digits
datasets: [digits]
pairs:
  - {{teacher: digits_cnn_large, student: digits_cnn_small}}
losses: [student, sp]
seeds: [0, 1, 2]
{teacher}
"""


def suite_with(tmp_path, teacher: str):
    path = tmp_path / "suite.yaml"
    path.write_text(textwrap.dedent(SUITE.format(teacher=teacher)))
    return load_suite(str(path))


def test_teacher_seeds_cross_every_student_seed(tmp_path):
    runs = expand_suite(suite_with(tmp_path, "teacher_seeds: [0, 1]"))
    assert len(runs) == 2 * 2 * 3  # losses x teacher seeds x seeds
    assert sorted({(r.teacher_seed, r.seed) for r in runs}) == [
        (t, s) for t in (0, 1) for s in (0, 1, 2)]
    teachers = teacher_specs(runs)
    assert sorted(t.seed for t in teachers) == [0, 1]
    assert len({t.config_hash for t in teachers}) == 2
    cohorts = group_cohorts(runs)
    assert len(cohorts) == 6  # one per (teacher seed, seed), both losses in each
    assert all(len({(r.teacher_seed, r.seed) for r in c.runs}) == 1 for c in cohorts)
    assert len({r.setting_hash for r in runs if r.loss == "sp"}) == 1  # one leaderboard cell


def test_one_teacher_by_default_and_both_fields_refused(tmp_path):
    runs = expand_suite(suite_with(tmp_path, "teacher_seed: 3"))
    assert {r.teacher_seed for r in runs} == {3} and len(runs) == 6
    with pytest.raises(UserError, match="teacher_seeds"):
        suite_with(tmp_path, "teacher_seed: 1\nteacher_seeds: [0, 1]")
    with pytest.raises(UserError, match="distinct"):
        suite_with(tmp_path, "teacher_seeds: [0, 0]")


def test_teacher_seed_is_read_from_the_spec():
    assert teacher_seed_of('{"teacher_seed": 1, "seed": 0}') == "1"
    assert teacher_seed_of("") == "0"


def frame(values: dict) -> pd.DataFrame:
    """Finished student runs: (loss, teacher seed, seed) -> accuracy."""
    rows = []
    for i, ((loss, teacher_seed, seed), value) in enumerate(values.items()):
        rows.append({"run_id": f"r{i}", "status": "FINISHED", "start_time": pd.Timestamp(i),
                     "role": "student", "dataset": "digits", "teacher": "big",
                     "student": "small", "loss": loss, "seed": str(seed), "scaled": "false",
                     "recipe": "digits", "config_hash": f"{loss}-{teacher_seed}-{seed}",
                     "setting_hash": loss, "spec": "", "failure_reason": "",
                     "teacher_seed": str(teacher_seed), "test_acc_last": value,
                     "test_acc_best": value})
    return pd.DataFrame(rows)


def test_leaderboard_pairs_by_teacher_seed_and_seed():
    rng = np.random.default_rng(0)
    sp = {("sp", t, s): 95 + t + 0.3 * s + rng.normal(0, 0.1) for t in (0, 1) for s in (0, 1, 2)}
    kd = {("kd", t, s): value + 0.2 + rng.normal(0, 0.1) for (_, t, s), value in sp.items()}
    table = build_leaderboard(frame({**sp, **kd}), "teachers").tables[0]
    comparison = table.cell("kd", Pair("big", "small")).comparison
    keys = sorted((t, s) for _, t, s in sp)
    a, b = [kd[("kd", *k)] for k in keys], [sp[("sp", *k)] for k in keys]
    assert comparison.evidence.n == 6 and comparison.evidence.teacher_seeds == 2
    assert comparison.p_value == pytest.approx(stats.ttest_rel(a, b).pvalue, rel=1e-9)
    # Pairing removes the teacher's and the seed's shared effect: Welch sees far less.
    assert comparison.p_value < 0.01 < comparison.evidence.p_welch
    assert table.cell("sp", Pair("big", "small")).summary.n == 6


def test_a_gain_that_depends_on_the_teacher_is_noted():
    sp = {("sp", t, s): 95.0 + 0.2 * s for t in (0, 1) for s in (0, 1, 2)}
    gain = {0: 0.1, 1: 1.5}
    kd = {("kd", t, s): value + gain[t] + 0.05 * s * (-1) ** t
          for (_, t, s), value in sp.items()}
    table = build_leaderboard(frame({**sp, **kd}), "teachers").tables[0]
    evidence = table.cell("kd", Pair("big", "small")).comparison.evidence
    d = {t: [kd[("kd", t, s)] - sp[("sp", t, s)] for s in (0, 1, 2)] for t in (0, 1)}
    assert evidence.p_teacher == pytest.approx(stats.f_oneway(d[0], d[1]).pvalue)
    assert any("depends on the teacher seed" in note for note in table.notes)
