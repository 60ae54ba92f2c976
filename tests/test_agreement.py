"""Teacher-student agreement: top-1 agreement and KL on known logits (KL checked against
scipy), logged with the last epoch of a trained cohort (and kept in its checkpointed history),
and shown by the leaderboard's --agreement table and in the CSV."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from scipy.special import softmax

import models
from benchmark.agreement import agreement_metrics, predict
from benchmark.data import load_splits, make_loader
from benchmark.engine import Cohort, RunEnv
from benchmark.leaderboard.build import build_leaderboard
from benchmark.leaderboard.markdown import render_markdown
from benchmark.leaderboard.tidy import tidy_frame
from benchmark.plan import RunSpec
from benchmark.recipes import get_recipe
from benchmark.records import Metric


def test_agreement_and_kl_on_known_logits():
    student = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 3.0], [1.0, 0.5, 0.0], [0.0, 0.0, 1.0]])
    teacher = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0], [2.0, 0.0, 0.0], [0.5, 0.0, 2.0]])
    metrics = agreement_metrics(student, teacher)
    assert metrics[Metric.TEST_AGREEMENT] == 75.0  # rows 0, 2, 3 agree
    expected = np.mean([stats.entropy(softmax(t), softmax(s))
                        for s, t in zip(student.numpy(), teacher.numpy())])
    assert metrics[Metric.TEST_KL] == pytest.approx(expected, rel=1e-5)
    assert agreement_metrics(teacher, teacher) == {Metric.TEST_AGREEMENT: 100.0,
                                                   Metric.TEST_KL: pytest.approx(0, abs=1e-7)}
    with pytest.raises(ValueError):
        agreement_metrics(student[:2], teacher)


def test_the_last_epoch_logs_agreement_with_the_teacher(tmp_path):
    recipe = get_recipe("digits").scaled_to(2, None)
    spec = RunSpec(suite="agree", role="student", dataset="digits", teacher="digits_cnn_large",
                   student="digits_cnn_small", loss="kd", terms=(("ce", 0.1), ("kd", 0.9)),
                   seed=0, recipe=recipe)
    data = load_splits("digits", None)
    teacher = models.create_model("digits_cnn_large", num_classes=10, in_chans=1)
    cohort = Cohort([spec], RunEnv(device=torch.device("cpu"), store=tmp_path), data=data,
                    teacher=teacher)
    student = cohort.members[0]
    [result] = cohort.run()
    assert result.status == "FINISHED"
    first, last = student.history
    assert Metric.TEST_AGREEMENT not in first  # only after the last epoch
    loader = make_loader(data.test, data.info, 512, train=False, seed=0,
                         device=torch.device("cpu"), augment=None)
    expected = agreement_metrics(predict(student.model, loader, torch.device("cpu")),
                                 predict(cohort.teacher, loader, torch.device("cpu")))
    assert last[Metric.TEST_AGREEMENT] == pytest.approx(expected[Metric.TEST_AGREEMENT])
    assert last[Metric.TEST_KL] == pytest.approx(expected[Metric.TEST_KL], rel=1e-6)
    assert 0 <= last[Metric.TEST_AGREEMENT] <= 100 and last[Metric.TEST_KL] > 0


def test_leaderboard_agreement_table_and_csv():
    rows = []
    for i, (loss, seed, acc, agree, kl) in enumerate([
            ("sp", 0, 90.0, 91.0, 0.20), ("sp", 1, 91.0, 93.0, 0.10),
            ("kd", 0, 92.0, 97.0, 0.05), ("kd", 1, 92.5, 96.0, 0.07)]):
        rows.append({"run_id": f"r{i}", "status": "FINISHED", "start_time": pd.Timestamp(i),
                     "role": "student", "dataset": "digits", "teacher": "big",
                     "student": "small", "loss": loss, "seed": str(seed), "scaled": "false",
                     "recipe": "digits", "config_hash": f"{loss}{seed}", "setting_hash": loss,
                     "spec": "", "failure_reason": "", "teacher_seed": "0",
                     "test_acc_last": acc, "test_acc_best": acc, "test_agreement": agree,
                     "test_kl": kl})
    board = build_leaderboard(pd.DataFrame(rows), "agree", agreement=True)
    text = render_markdown(board)
    assert "| KD | 96.50 ± 0.71 (2), KL 0.060 |" in text
    assert "| SP | 92.00 ± 1.41 (2), KL 0.150 |" in text
    assert "Teacher-student top-1 agreement" not in render_markdown(
        build_leaderboard(pd.DataFrame(rows), "agree"))
    frame = tidy_frame(board).set_index("loss")
    assert frame.loc["kd", "agreement"] == pytest.approx(96.5)
    assert frame.loc["sp", "kl"] == pytest.approx(0.15)
