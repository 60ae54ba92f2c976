"""Every registered loss, forward + backward, on every published CIFAR-100 teacher -> student pair.

Gradients must reach the student and the loss's own trainable parts, never the teacher, and the
teacher's features must come out of the loss unchanged. Losses that need equal widths on both
sides (FSP, KD-SVD) refuse the other pairs with a ``UserError``, as the published code refuses
them (n/a in the CRD table).
"""

from __future__ import annotations

import pytest
import torch

import models
from benchmark.errors import UserError
from losses import LossContext, create_loss, list_losses

SAME_FAMILY = [("wrn_40_2", "wrn_16_2"), ("wrn_40_2", "wrn_40_1"), ("resnet56", "resnet20"),
               ("resnet110", "resnet20"), ("resnet110", "resnet32"), ("resnet32x4", "resnet8x4"),
               ("vgg13", "vgg8")]
CROSS_FAMILY = [("vgg13", "mobilenetv2"), ("resnet50", "mobilenetv2"), ("resnet50", "vgg8"),
                ("resnet32x4", "shufflev1"), ("resnet32x4", "shufflev2"), ("wrn_40_2", "shufflev1")]
PAIRS = SAME_FAMILY + CROSS_FAMILY
BATCH, CLASSES, TRAIN_SIZE = 4, 100, 64
SETTINGS = {"crd": {"K": 8, "feat_dim": 16}}
EQUAL_WIDTHS_ONLY = {"fsp", "kdsvd"}
EQUAL_WIDTH_PAIRS = set(SAME_FAMILY) - {("wrn_40_2", "wrn_40_1")}


class ModelCache:
    """Each architecture built once per test module; teacher features computed once."""

    def __init__(self):
        self.models, self.shapes, self.teacher_feats = {}, {}, {}
        generator = torch.Generator().manual_seed(0)
        self.images = torch.randn(BATCH, 3, 32, 32, generator=generator)

    def model(self, name):
        if name not in self.models:
            torch.manual_seed(0)
            model = models.create_model(name, num_classes=CLASSES)
            self.shapes[name] = {k: v.shape for k, v in models.tap_info(model).items()}
            self.models[name] = model
        return self.models[name]

    def teacher_features(self, name):
        if name not in self.teacher_feats:
            teacher = self.model(name).eval()
            with torch.no_grad(), models.FeatureExtractor(teacher, self.shapes[name]) as extract:
                self.teacher_feats[name] = extract(self.images)
        return self.teacher_feats[name]


@pytest.fixture(scope="module")
def cache():
    return ModelCache()


def test_pair_list_matches_the_published_cifar100_table():
    import csv
    from pathlib import Path

    table = Path(__file__).resolve().parents[2] / "shared" / "reference" / "published_results.csv"
    if not table.exists():
        pytest.skip("published_results.csv is not beside this checkout")
    with table.open() as handle:
        published = {(r["teacher"], r["student"]) for r in csv.DictReader(handle)
                     if r["dataset"] == "cifar100"}
    assert set(PAIRS) == published


@pytest.mark.parametrize("teacher_name, student_name", PAIRS,
                         ids=[f"{t}->{s}" for t, s in PAIRS])
def test_every_loss_runs_forward_backward_on_pair(cache, teacher_name, student_name):
    teacher, student = cache.model(teacher_name), cache.model(student_name).train()
    teacher_feats = cache.teacher_features(teacher_name)
    frozen = {k: v.clone() for k, v in teacher_feats.items()}
    labels = torch.arange(BATCH) * 7 % CLASSES
    context = LossContext(TRAIN_SIZE, CLASSES, torch.arange(TRAIN_SIZE) % CLASSES, teacher=teacher)
    with models.FeatureExtractor(student, cache.shapes[student_name]) as extract:
        student_feats = extract(cache.images)
    total = 0.0
    for name in list_losses():
        if name in EQUAL_WIDTHS_ONLY and (teacher_name, student_name) not in EQUAL_WIDTH_PAIRS:
            with pytest.raises(UserError, match="channel counts"):
                create_loss(name, cache.shapes[student_name], cache.shapes[teacher_name], context)
            continue
        loss = create_loss(name, cache.shapes[student_name], cache.shapes[teacher_name], context,
                           **SETTINGS.get(name, {}))
        value = loss(student_feats, teacher_feats, labels=labels, indices=torch.arange(BATCH))
        assert value.dim() == 0 and torch.isfinite(value), name
        # Gradients w.r.t. the student's tapped tensors (part of its graph) and the loss's parts.
        read = [student_feats[tap] for tap in loss.student_tap_names]
        trainable = loss.trainable_parameters()
        grads = torch.autograd.grad(value, read + trainable, retain_graph=True, allow_unused=True)
        assert any(g is not None and g.abs().sum() > 0 for g in grads[:len(read)]), name
        assert all(g is not None for g in grads[len(read):]), f"{name}: a part gets no gradient"
        total = total + value
    total.backward()
    first_layer = next(student.parameters())
    assert first_layer.grad is not None and first_layer.grad.abs().sum() > 0
    student.zero_grad(set_to_none=True)
    assert all(p.grad is None for p in teacher.parameters())
    assert not any(t.requires_grad for t in teacher_feats.values())
    assert all(torch.equal(frozen[k], teacher_feats[k]) for k in frozen)
