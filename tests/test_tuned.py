"""The tuned-weights file: entries written by `kdbench tune` resolve `weight: tuned` in suites,
composite labels first, and bring their tuned hyperparameters along."""

from __future__ import annotations

import textwrap

import pytest

from benchmark.config import load_suite
from benchmark.errors import UserError
from benchmark.plan import expand_suite
from benchmark.tuned import lookup_tuned, write_tuned_weight

PAIR = {"dataset": "digits", "teacher": "digits_cnn_large", "student": "digits_cnn_small"}


def test_label_entry_wins_then_term_entry_with_params(tmp_path):
    path = tmp_path / "tuned.yaml"
    write_tuned_weight({**PAIR, "loss": "sp", "term": "sp", "weight": 1411.0,
                        "params": {"weight.sp": 1411.0}}, path)
    write_tuned_weight({**PAIR, "loss": "kd", "term": "kd", "weight": 7.8,
                        "params": {"weight.kd": 7.8, "kd.T": 3.5}}, path)
    write_tuned_weight({**PAIR, "loss": "sp+kd", "term": "sp", "weight": 900.0,
                        "params": {"weight.sp": 900.0}}, path)
    assert lookup_tuned(path, **PAIR, label="sp+kd", term="sp") == (900.0, {})
    assert lookup_tuned(path, **PAIR, label="sp", term="sp") == (1411.0, {})
    assert lookup_tuned(path, **PAIR, label="kd", term="kd") == (7.8, {"T": 3.5})
    with pytest.raises(UserError, match="kdbench tune --dataset digits"):
        lookup_tuned(path, **PAIR, label="crd", term="crd")


def test_suite_with_weight_tuned_picks_up_value_and_hparams(tmp_path):
    path = tmp_path / "tuned.yaml"
    write_tuned_weight({**PAIR, "loss": "kd", "term": "kd", "weight": 2.5,
                        "params": {"weight.kd": 2.5, "kd.T": 6.0}}, path)
    suite_file = tmp_path / "s.yaml"
    suite_file.write_text(textwrap.dedent(f"""
        name: tuned
        recipe: digits
        datasets: [digits]
        pairs: [{{teacher: digits_cnn_large, student: digits_cnn_small}}]
        losses:
          - {{label: kd, terms: {{ce: 0.1, kd: tuned}}}}
        seeds: [0]
        tuned_weights: {path}
        """))
    [run] = expand_suite(load_suite(str(suite_file)))
    assert dict(run.terms) == {"ce": 0.1, "kd": 2.5}
    assert run.term_hparams("kd") == {"T": 6.0}
