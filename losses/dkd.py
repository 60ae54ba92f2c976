"""Decoupled knowledge distillation (Zhao et al., CVPR 2022), official code: mdistiller.

L = warm-up(e) * (alpha * TCKD + beta * NCKD) on the logits (:func:`losses.functional.dkd`),
with the whole term ramped linearly over ``warmup_epochs`` (20): min((e + 1) / 20, 1) for the
0-based epoch e, i.e. mdistiller's min(epoch / 20, 1) with 1-based epochs (0.05 in epoch 1).
Defaults are mdistiller's CIFAR-100 config for resnet32x4 -> resnet8x4: alpha 1, beta 8, T 4,
DKD weight 1 with CE 1. Other pairs' beta (2 for res56/res110 students, 6 for vgg13 -> vgg8,
vgg13 -> mv2 and the wrn_40_2 pairs) are set per pair by the suite. No trainable parts.
"""

from __future__ import annotations

from losses import functional
from losses.registry import LOGITS, DistillLoss, HParam, register_loss


@register_loss("dkd")
class DKDLoss(DistillLoss):
    """alpha * TCKD + beta * NCKD at temperature T, times the linear warm-up; weight 1."""

    default_weight = 1.0
    hparams = {
        "alpha": HParam(1.0, 0.1, 10.0, log=True),
        "beta": HParam(8.0, 0.5, 32.0, log=True),
        "T": HParam(4.0, 1.0, 16.0, log=True),
    }
    options = {"warmup_epochs": 20}
    needs_labels = True
    logit_host = True

    def forward(self, student_feats, teacher_feats, labels=None, indices=None):
        labels = self.require(labels, "labels")
        value = functional.dkd(student_feats[LOGITS], teacher_feats[LOGITS], labels,
                               self.config["alpha"], self.config["beta"], self.temperature())
        return self.warmup_factor(int(self.config["warmup_epochs"])) * value
