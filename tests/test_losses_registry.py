"""Loss registry: declarations, create_loss errors, per-loss construction, composite losses."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from benchmark.errors import UserError
from losses import (DistillLoss, HParam, LossContext, create_loss,
                    create_weighted_loss, expand_loss_label, functional, list_losses, loss_class,
                    register_loss)
from losses.registry import registry_source, unregister_loss

BUILT_IN = ["at", "cc", "ce", "crd", "fitnet", "kd", "nst", "pkt", "rkd", "sp", "vid"]
PROTOCOL_WEIGHTS = {"sp": 3000, "at": 1000, "fitnet": 100, "rkd": 1, "crd": 0.8, "pkt": 30000,
                    "cc": 0.02, "vid": 1, "nst": 50, "kd": 0.9, "ce": 1}


def taps(stages, embedding=8, classes=5, last=None):
    shapes = {"stem": (4, 16, 16), "embedding": (embedding,), "logits": (classes,)}
    for i, shape in enumerate(stages, start=1):
        shapes[f"stage{i}"] = shape
    shapes["last"] = last or stages[-1]
    return shapes


STUDENT = taps([(4, 16, 16), (8, 8, 8), (16, 4, 4)], embedding=16)
TEACHER = taps([(6, 16, 16), (12, 8, 8), (24, 4, 4), (32, 2, 2)], embedding=32)


def features(shapes, b=4, requires_grad=False):
    return {name: torch.randn(b, *shape, requires_grad=requires_grad)
            for name, shape in shapes.items()}


def test_every_built_in_loss_is_registered_with_protocol_weights():
    assert set(BUILT_IN) <= set(list_losses())
    for name, weight in PROTOCOL_WEIGHTS.items():
        cls = loss_class(name)
        assert cls.name == name and cls.default_weight == weight
        assert registry_source(name) == "kdbench built-in"
        low, high = cls.search_weight_range()
        assert low == pytest.approx(weight / 10) and high == pytest.approx(weight * 10)


def test_declared_hyperparameters_and_flags():
    assert loss_class("kd").hparams["T"].default == 4.0
    rkd = loss_class("rkd").hparams
    assert (rkd["distance_weight"].default, rkd["angle_weight"].default) == (25.0, 50.0)
    crd = loss_class("crd").hparams
    assert {k: crd[k].default for k in crd} == {"tau": 0.07, "K": 16384, "momentum": 0.5,
                                                "feat_dim": 128}
    assert crd["K"].is_integer and not crd["tau"].is_integer and not crd["momentum"].log
    for name in BUILT_IN:
        for hp in loss_class(name).hparams.values():
            assert hp.low <= hp.default <= hp.high
    assert [n for n in BUILT_IN if loss_class(n).needs_labels] == ["ce"]
    assert [n for n in BUILT_IN if loss_class(n).needs_indices] == ["crd"]


def test_unknown_loss_names_close_matches():
    with pytest.raises(UserError, match=r"Unknown loss 'spp'.*Did you mean sp"):
        create_loss("spp", STUDENT, TEACHER)


def test_unknown_and_mistyped_hyperparameters_are_user_errors():
    with pytest.raises(UserError, match=r"'kd' has no hyperparameter 'temperature'.*Known: T"):
        create_loss("kd", STUDENT, TEACHER, temperature=2.0)
    with pytest.raises(UserError, match="takes no settings"):
        create_loss("pkt", STUDENT, TEACHER, eps=1.0)
    with pytest.raises(UserError, match="must be an integer"):
        create_loss("at", STUDENT, TEACHER, p=1.5)
    with pytest.raises(UserError, match="must be a number"):
        create_loss("kd", STUDENT, TEACHER, T="hot")
    assert create_loss("kd", STUDENT, TEACHER, T=2).temperature() == 2.0


def test_missing_tap_names_the_loss_the_tap_and_the_available_taps():
    student = {"stage1": (4, 8, 8), "logits": (5,)}
    with pytest.raises(UserError) as err:
        create_loss("fitnet", student, TEACHER)
    message = str(err.value)
    assert "'fitnet'" in message and "'stage2'" in message and "stage1" in message
    with pytest.raises(UserError, match=r"'sp' reads tap 'last' of the teacher"):
        create_loss("sp", STUDENT, {"logits": (5,)})


def test_tap_info_objects_are_accepted():
    info = {name: SimpleNamespace(name=name, shape=shape) for name, shape in STUDENT.items()}
    loss = create_loss("vid", info, TEACHER)
    assert loss.student_taps["stage2"] == (8, 8, 8)


def test_tap_names_per_loss():
    expected = {
        "ce": (["logits"], []), "kd": (["logits"], ["logits"]), "sp": (["last"], ["last"]),
        "fitnet": (["stage2"], ["stage2"]), "rkd": (["embedding"], ["embedding"]),
        "pkt": (["embedding"], ["embedding"]), "cc": (["embedding"], ["embedding"]),
    }
    for name, (student_taps, teacher_taps) in expected.items():
        loss = create_loss(name, STUDENT, TEACHER)
        assert (loss.student_tap_names, loss.teacher_tap_names) == (student_taps, teacher_taps)
    stages = ["stage1", "stage2", "stage3"]  # zip truncates to the student's 3 stages
    for name in ("at", "vid", "nst"):
        loss = create_loss(name, STUDENT, TEACHER)
        assert loss.student_tap_names == stages and loss.teacher_tap_names == stages


def test_modules_compute_their_functional_formula():
    s, t = features(STUDENT), features(TEACHER)
    assert torch.equal(create_loss("sp", STUDENT, TEACHER)(s, t), functional.sp(s["last"], t["last"]))
    assert torch.equal(create_loss("kd", STUDENT, TEACHER, T=3.0)(s, t),
                       functional.kd(s["logits"], t["logits"], 3.0))
    pairs = ["stage1", "stage2", "stage3"]
    assert torch.equal(create_loss("at", STUDENT, TEACHER)(s, t),
                       functional.attention([s[k] for k in pairs], [t[k] for k in pairs]))
    rkd = create_loss("rkd", STUDENT, TEACHER)(s, t)
    expected = (25 * functional.rkd_distance(s["embedding"], t["embedding"])
                + 50 * functional.rkd_angle(s["embedding"], t["embedding"]))
    assert torch.allclose(rkd, expected)
    labels = torch.tensor([0, 1, 2, 3])
    assert torch.allclose(create_loss("ce", STUDENT, TEACHER)(s, t, labels=labels),
                          nn.functional.cross_entropy(s["logits"], labels))


def test_sp_layer_options():
    s, t = features(STUDENT), features(TEACHER)
    stages = create_loss("sp", STUDENT, TEACHER, layers="stages")
    assert stages.pairs == [("stage1", "stage1"), ("stage2", "stage2"), ("stage3", "stage3")]
    expected = sum(functional.sp(s[k], t[k]) for k in ("stage1", "stage2", "stage3"))
    assert torch.allclose(stages(s, t), expected)
    explicit = create_loss("sp", STUDENT, TEACHER, layers=["stage2", ["last", "stage4"]])
    assert explicit.pairs == [("stage2", "stage2"), ("last", "stage4")]
    assert explicit.teacher_tap_names == ["stage2", "stage4"]
    with pytest.raises(UserError, match="layers=7"):
        create_loss("sp", STUDENT, TEACHER, layers=7)


def test_sp_weight_for_batch_scales_linearly():
    from losses.sp import sp_weight_for_batch

    assert sp_weight_for_batch(64) == 3000 and sp_weight_for_batch(128) == 6000


@pytest.mark.parametrize("s_hw, t_hw, kind, kernel", [
    (16, 8, nn.Conv2d, (3, 3)), (4, 8, nn.ConvTranspose2d, (4, 4)),
    (8, 8, nn.Conv2d, (1, 1)), (10, 8, nn.Conv2d, (3, 3)),
])
def test_fitnet_regressor_follows_protocol(s_hw, t_hw, kind, kernel):
    student = {"stage2": (5, s_hw, s_hw)}
    teacher = {"stage2": (7, t_hw, t_hw)}
    loss = create_loss("fitnet", student, teacher)
    conv, bn, relu = loss.regressor
    assert type(conv) is kind and conv.kernel_size == kernel
    assert isinstance(bn, nn.BatchNorm2d) and isinstance(relu, nn.ReLU)
    out = loss.regressor(torch.randn(2, 5, s_hw, s_hw))
    assert out.shape == (2, 7, t_hw, t_hw)
    assert len(loss.trainable_parameters()) == 4 and "regressor.1.running_mean" in loss.state_dict()


def test_fitnet_rejects_unmappable_sizes():
    with pytest.raises(UserError, match="cannot map a student map of 6x6 to a teacher map of 8x8"):
        create_loss("fitnet", {"stage2": (5, 6, 6)}, {"stage2": (7, 8, 8)})


def test_vid_regressors_and_initial_variance():
    loss = create_loss("vid", STUDENT, TEACHER)
    assert len(loss.stage_losses) == 3
    pair = loss.stage_losses[1]
    convs = [m for m in pair.regressor if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(8, 12), (12, 12), (12, 12)]
    assert all(c.bias is None and c.kernel_size == (1, 1) for c in convs)
    assert torch.allclose(functional.vid_variance(pair.log_scale), torch.full((12,), 5.0))


def test_cc_embeds_both_sides_to_128():
    loss = create_loss("cc", STUDENT, TEACHER)
    assert (loss.embed_student.in_features, loss.embed_student.out_features) == (16, 128)
    assert (loss.embed_teacher.in_features, loss.embed_teacher.out_features) == (32, 128)
    assert len(loss.trainable_parameters()) == 4


# ----- registration -----

class _Scratch(DistillLoss):
    default_weight = 2.0

    def forward(self, student_feats, teacher_feats, labels=None, indices=None):
        return student_feats["logits"].sum() * 0


def test_registering_a_taken_name_is_a_user_error():
    with pytest.raises(UserError, match=r"'sp' is already registered by kdbench built-in"):
        register_loss("sp")(type("OtherSP", (_Scratch,), {}))
    assert loss_class("sp").__name__ == "SPLoss"


def test_register_validates_declarations():
    try:
        with pytest.raises(UserError, match="not a DistillLoss subclass"):
            register_loss("scratch_plain")(type("Plain", (), {}))
        bad = type("BadRange", (_Scratch,), {"hparams": {"x": HParam(5.0, 1.0, 2.0)}})
        with pytest.raises(UserError, match="declares default 5.0 and range"):
            register_loss("scratch_bad")(bad)
        good = register_loss("scratch_good")(type("Good", (_Scratch,), {}))
        register_loss("scratch_good")(good)  # the same class again is fine
        assert loss_class("scratch_good") is good and good.name == "scratch_good"
    finally:
        for name in ("scratch_plain", "scratch_bad", "scratch_good"):
            unregister_loss(name)


# ----- labels and composite losses -----

@pytest.mark.parametrize("label, expected", [
    ("student", {"ce": 1.0}),
    ("kd", {"ce": 0.1, "kd": 0.9}),
    ("sp", {"ce": 1.0, "sp": "default"}),
    ("crd+kd", {"ce": 1.0, "kd": 1.0, "crd": "default"}),
    ("kd+at", {"ce": 1.0, "kd": 1.0, "at": "default"}),
    ("crd+pkt", {"ce": 1.0, "crd": "default", "pkt": "default"}),
])
def test_expand_loss_label_follows_protocol(label, expected):
    assert expand_loss_label(label) == expected


@pytest.mark.parametrize("label, message", [
    ("sp+sp", "repeats"), ("sp+", "empty term"), ("teacher", "Unknown loss 'teacher'"),
    ("student+sp", "combines"), ("spx+kd", "Did you mean sp"),
])
def test_expand_loss_label_rejects_bad_labels(label, message):
    with pytest.raises(UserError, match=message):
        expand_loss_label(label)


def test_weighted_loss_sums_weighted_terms_and_unions_taps():
    s, t = features(STUDENT, requires_grad=True), features(TEACHER)
    labels = torch.tensor([0, 1, 2, 3])
    combined = create_weighted_loss("fitnet+kd", STUDENT, TEACHER)
    assert combined.weights == {"ce": 1.0, "kd": 1.0, "fitnet": 100.0}
    assert combined.student_tap_names == ["logits", "stage2"]
    assert combined.teacher_tap_names == ["logits", "stage2"]
    assert combined.needs_labels and not combined.needs_indices
    total, parts = combined(s, t, labels=labels)
    ce = nn.functional.cross_entropy(s["logits"], labels)
    assert torch.allclose(parts["ce"], ce) and not parts["ce"].requires_grad
    assert torch.allclose(parts["kd"], functional.kd(s["logits"], t["logits"]))
    assert torch.allclose(total, parts["ce"] + parts["kd"] + parts["fitnet"])
    fitnet = combined.terms["fitnet"]
    assert combined.trainable_parameters() == fitnet.trainable_parameters()
    total.backward()
    assert all(p.grad is not None for p in combined.trainable_parameters())
    assert set(combined.state_dict()) == {f"terms.fitnet.{k}" for k in fitnet.state_dict()}


def test_weighted_loss_with_explicit_terms_and_hparams():
    context = LossContext(20, 5, torch.arange(20) % 5)
    combined = create_weighted_loss({"ce": 1.0, "crd": "default", "kd": 0.5}, STUDENT, TEACHER,
                                    context, hparams={"crd": {"K": 4, "feat_dim": 8}})
    assert combined.weights == {"ce": 1.0, "crd": 0.8, "kd": 0.5}
    assert combined.needs_indices and combined.terms["crd"].num_negatives == 4
    total, parts = combined(features(STUDENT), features(TEACHER),
                            labels=torch.tensor([0, 1, 2, 3]), indices=torch.tensor([0, 6, 12, 18]))
    assert math.isfinite(total.item()) and set(parts) == {"ce", "crd", "kd"}
