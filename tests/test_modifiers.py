"""Logit modifiers as an axis (``kd@ls``, ``dkd@ls``, ``kd@ctkd``): the label grammar, the
composed classes' defaults, values against the official code, CTKD's curriculum and reversed
temperature gradient, config hashes, the Optuna space and leaderboard names."""

from __future__ import annotations

import math
import textwrap

import pytest
import torch

from benchmark.errors import UserError
from losses import create_loss, create_weighted_loss, expand_loss_label, is_loss, loss_class
from losses import functional as LF
from losses.modifiers import cosine_curriculum
from test_modern_losses import GOLDEN, GOLDEN_TOL, close, logit_inputs

LOGITS = {"logits": (7,)}
# zhengli97/CTKD@7d52522: models/temp_global.py Global_T + GradientReversal, distiller_zoo/KD.py
# DistillKL, helper/loops.py (T = 1 + 20 sigmoid), train_student.py CosineDecay(0, -1, 10) at
# 1-based epoch 3, on logit_inputs() in float64:
CTKD_GOLDEN = {"T": 15.621171572600097, "loss": 8.126141534444132,
               "dtheta": -0.01777718326425593, "dzs00": -0.07070878062776144}


def feats(z):
    return {"logits": z}


def test_label_grammar_keeps_the_kd_baseline_form_and_sorts_modifiers():
    assert expand_loss_label("kd@ls") == {"ce": 0.1, "kd@ls": "default"}
    assert expand_loss_label("kd@ctkd") == {"ce": 0.1, "kd@ctkd": "default"}
    assert expand_loss_label("dkd@ls") == {"ce": 1.0, "dkd@ls": "default"}
    assert expand_loss_label("kd@ls@ctkd") == {"ce": 0.1, "kd@ctkd@ls": "default"}
    assert expand_loss_label("sp+kd@ls") == {"ce": 1.0, "kd@ls": 1.0, "sp": "default"}
    assert is_loss("dkd@ls") and not is_loss("sp@ls") and not is_loss("kd@nope")


@pytest.mark.parametrize("label, match", [("kd@nope", "Unknown modifier"),
                                          ("sp@ls", "does not apply"),
                                          ("dist@ctkd", "temperature"),
                                          ("kd@ls@ls", "repeats a modifier")])
def test_bad_modifier_labels_are_user_errors(label, match):
    with pytest.raises(UserError, match=match):
        expand_loss_label(label)


def test_composed_defaults_are_the_official_ones():
    kd_ls, dkd_ls, kd_ctkd = loss_class("kd@ls"), loss_class("dkd@ls"), loss_class("kd@ctkd")
    assert kd_ls.default_weight == 9.0 and kd_ls.hparams["T"].default == 2.0
    assert {k: v.default for k, v in dkd_ls.hparams.items()} == {"alpha": 9.0, "beta": 72.0,
                                                                  "T": 2.0}
    assert kd_ctkd.default_weight == 0.9 and "T" not in kd_ctkd.hparams
    assert kd_ctkd.options["t_end"] == 20.0 and loss_class("kd@ls@ctkd") is loss_class("kd@ctkd@ls")


def test_ls_values_match_the_official_code():
    z_s, z_t, y = logit_inputs()
    kd_ls = create_loss("kd@ls", LOGITS, LOGITS)
    assert close(kd_ls(feats(z_s), feats(z_t)), GOLDEN["kd@ls"], GOLDEN_TOL)
    dkd_ls = create_loss("dkd@ls", LOGITS, LOGITS)
    dkd_ls.set_epoch(19)  # past DKD's warm-up
    assert close(dkd_ls(feats(z_s), feats(z_t), labels=y), GOLDEN["dkd@ls"], GOLDEN_TOL)


def test_ctkd_matches_the_official_temperature_module_and_gradient_reversal():
    z_s, z_t, _ = logit_inputs()
    loss = create_loss("kd@ctkd", LOGITS, LOGITS).double()
    loss.set_epoch(2)  # the official third epoch
    student = z_s.clone().requires_grad_(True)
    value = loss(feats(student), feats(z_t))
    value.backward()
    theta = loss.modifiers[0].theta
    assert close(loss.modifiers[0].temperature(), CTKD_GOLDEN["T"], GOLDEN_TOL)
    assert close(value, CTKD_GOLDEN["loss"], GOLDEN_TOL)
    assert close(theta.grad, CTKD_GOLDEN["dtheta"], GOLDEN_TOL)
    assert close(student.grad[0, 0], CTKD_GOLDEN["dzs00"], GOLDEN_TOL)


def test_ctkd_temperature_gradient_is_the_true_one_times_the_curriculum():
    z_s, z_t, _ = logit_inputs()
    loss = create_loss("kd@ctkd", LOGITS, LOGITS).double()
    theta = loss.modifiers[0].theta
    for epoch in (0, 4, 30):
        loss.set_epoch(epoch)
        theta.grad = None
        loss(feats(z_s), feats(z_t)).backward()
        plain = theta.detach().clone().requires_grad_(True)
        T = 1.0 + 20.0 * torch.sigmoid(plain)
        (true,) = torch.autograd.grad(LF.kd(z_s, z_t, T.squeeze(0)), plain)
        expected = (math.cos(min(epoch + 1, 10) * math.pi / 10) + 1) / 2 - 1
        assert close(theta.grad, expected * true, 1e-12)
    assert cosine_curriculum(30, 10, 0.0, -1.0) == -1.0


def test_weighted_loss_trains_and_checkpoints_the_ctkd_temperature():
    objective = create_weighted_loss("kd@ctkd", LOGITS, LOGITS)
    params = objective.trainable_parameters()
    assert len(params) == 1 and params[0].shape == (1,)
    assert "terms.kd@ctkd.modifiers.0.theta" in objective.state_dict()
    objective.set_epoch(5)
    assert objective.terms["kd@ctkd"].modifiers[0].epoch == 5


def test_config_hash_search_space_and_leaderboard_name(tmp_path):
    from benchmark.config import load_suite
    from benchmark.leaderboard.layout import display_name
    from benchmark.plan import expand_suite
    from studies.space import search_space, tuned_terms

    path = tmp_path / "suite.yaml"
    path.write_text(textwrap.dedent("""
        name: tiny
        recipe: digits
        datasets: [digits]
        pairs:
          - {teacher: digits_cnn_large, student: digits_cnn_small}
        losses: [kd, kd@ls, dkd, dkd@ls, kd@ctkd]
        seeds: [0]
    """))
    runs = {r.loss: r for r in expand_suite(load_suite(str(path)))}
    assert dict(runs["kd@ls"].terms) == {"ce": 0.1, "kd@ls": 9.0}
    assert dict(runs["kd@ctkd"].terms) == {"ce": 0.1, "kd@ctkd": 0.9}
    assert len({r.config_hash for r in runs.values()}) == 5
    names = {p.name for p in search_space(["dkd@ls"], "full")}
    assert names == {"weight.dkd@ls", "dkd@ls.alpha", "dkd@ls.beta", "dkd@ls.T"}
    assert {p.name for p in search_space(["kd@ctkd"], "full")} == {"weight.kd@ctkd"}
    assert tuned_terms(["ce", "sp", "kd@ls"]) == ["sp"]
    assert [display_name(r) for r in ("dkd", "dkd@ls", "kd@ctkd@ls")] == [
        "DKD", "DKD + LS", "KD + CTKD + LS"]
