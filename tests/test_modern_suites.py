"""The modern-baseline suites: cifar100-modern plans the 13 published pairs with each method's
official per-pair settings (pair weights, hyperparameters, exclusions), and every run planned by
digits-modern builds and takes a training step on the real digits models."""

from __future__ import annotations

import pytest
import torch

import models
from benchmark.config import load_suite
from benchmark.plan import expand_suite
from losses import LossContext, create_weighted_loss
from test_losses_pairs import PAIRS, SAME_FAMILY


def planned(name):
    return expand_suite(load_suite(name))


def cell(runs, teacher, student, loss):
    """(terms, hparams) of seed 0 of one leaderboard cell."""
    spec = next(r for r in runs if r.seed == 0 and (r.teacher, r.student, r.loss) == (
        teacher, student, loss))
    return dict(spec.terms), {t: dict(v) for t, v in spec.hparams}


def test_cifar100_modern_has_the_published_pairs_and_official_settings():
    runs = planned("cifar100-modern")
    assert {(r.teacher, r.student) for r in runs} == set(PAIRS)
    assert cell(runs, "resnet56", "resnet20", "dkd") == ({"ce": 1.0, "dkd": 1.0},
                                                         {"dkd": {"beta": 2.0}})
    assert cell(runs, "resnet32x4", "resnet8x4", "dkd")[1] == {}  # the class default, beta 8
    assert cell(runs, "resnet56", "resnet20", "reviewkd")[0]["reviewkd"] == 0.6
    assert cell(runs, "resnet32x4", "shufflev2", "reviewkd")[0]["reviewkd"] == 8.0
    assert cell(runs, "resnet32x4", "shufflev2", "wttm") == ({"ce": 1.0, "wttm": 16.0},
                                                             {"wttm": {"gamma": 0.4}})
    assert cell(runs, "resnet110", "resnet20", "kd@ls") == ({"ce": 0.1, "kd@ls": 12.0},
                                                            {"kd@ls": {"T": 4.0}})
    assert cell(runs, "wrn_40_2", "shufflev1", "srrl")[1] == {"srrl": {"feature_weight": 10.0}}
    assert cell(runs, "vgg13", "vgg8", "dkd@ls")[1] == {"dkd@ls": {"T": 2.0, "alpha": 15.0,
                                                                   "beta": 30.0}}
    equal_widths = set(SAME_FAMILY) - {("wrn_40_2", "wrn_40_1")}
    for loss in ("fsp", "kdsvd"):
        assert {(r.teacher, r.student) for r in runs if r.loss == loss} == equal_widths
    assert len({r.config_hash for r in runs}) == len(runs)


def digits_models():
    built = {}
    for name in ("digits_cnn_large", "digits_cnn_small", "digits_resnet_tiny"):
        torch.manual_seed(0)
        model = models.create_model(name, num_classes=10, in_chans=1)
        built[name] = (model, {k: v.shape for k, v in models.tap_info(model, (1, 8, 8)).items()})
    return built


@pytest.mark.parametrize("student", ["digits_cnn_small", "digits_resnet_tiny"])
def test_every_digits_modern_run_builds_and_steps(student):
    runs = [r for r in planned("digits-modern") if r.seed == 0 and r.student == student]
    built = digits_models()
    (teacher, t_shapes), (model, s_shapes) = built["digits_cnn_large"], built[student]
    images, labels = torch.randn(8, 1, 8, 8), torch.arange(8) % 10
    teacher.eval()
    with torch.no_grad(), models.FeatureExtractor(teacher, t_shapes) as extract:
        teacher_feats = extract(images)
    context = LossContext(16, 10, torch.arange(16) % 10, teacher=teacher)
    for spec in runs:
        objective = create_weighted_loss(dict(spec.terms), s_shapes, t_shapes, context,
                                         hparams={t: dict(v) for t, v in spec.hparams})
        with models.FeatureExtractor(model, objective.student_tap_names) as extract:
            total, _ = objective(extract(images), teacher_feats, labels=labels,
                                 indices=torch.arange(8))
        total.backward()
        assert torch.isfinite(total), spec.loss
        model.zero_grad(set_to_none=True)
