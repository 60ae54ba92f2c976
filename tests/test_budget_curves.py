"""Tuning-budget curves: the exact expected best of n trials from order statistics (checked
against brute-force enumeration of every draw), monotone, ending at the mean of the maximum, and
`kdbench studies show` prints the common-budget figures and saves budget.png."""

from __future__ import annotations

import itertools

import numpy as np
import optuna
import pytest

from benchmark.cli import main
from studies.budget_curves import budget_lines, expected_best


def brute_force(values, n, best=max):
    """Mean of the best over every ordered draw of n values with replacement."""
    return np.mean([best(draw) for draw in itertools.product(values, repeat=n)])


def test_expected_best_equals_enumeration_of_every_draw():
    values = [71.0, 74.5, 73.0, 74.5, 70.0]
    curve = expected_best(values)
    for n in range(1, 5):
        assert curve[n - 1] == pytest.approx(brute_force(values, n))
    assert curve[0] == pytest.approx(np.mean(values))  # one trial: the mean
    assert np.all(np.diff(curve) >= 0) and curve[-1] < max(values)
    low = expected_best(values, maximize=False)
    assert low[2] == pytest.approx(brute_force(values, 3, best=min))
    assert expected_best([]).size == 0


def _study(url, name, loss, values):
    study = optuna.create_study(storage=url, study_name=name, direction="maximize")
    for v in values:
        study.add_trial(optuna.trial.create_trial(
            params={"w": 1.0}, value=v,
            distributions={"w": optuna.distributions.FloatDistribution(0.1, 10)}))
    for key, value in {"loss": loss, "teacher": "big", "student": "small"}.items():
        study.set_user_attr(key, value)
    return study


def test_studies_show_draws_budget_curves_at_the_common_budget(tmp_path, capsys):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{tmp_path / 'o.db'}"
    kd = _study(url, "kd-study", "kd", [90.0, 92.0, 91.0, 95.0])
    sp = _study(url, "sp-study", "sp", [93.0, 89.0])
    lines = budget_lines([kd, sp])
    assert lines[0].startswith("expected best validation accuracy at 2 trials")
    assert f"kd (big -> small): {brute_force([90, 92, 91, 95], 2):.2f}" in lines[1]
    assert f"sp (big -> small): {brute_force([93, 89], 2):.2f}" in lines[2]
    out = tmp_path / "plots"
    assert main(["studies", "show", "--storage", url, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "at 2 trials (the smallest budget)" in printed
    assert (out / "budget.png").stat().st_size > 1000
