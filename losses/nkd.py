"""Normalized KD (Yang et al., ICCV 2023), official code: yzd-v/cls_KD ``NKDLoss``.

L = -mean p_t[y] log p_s[y] - gamma T^2 mean sum q_t log q_s over the non-target classes
(:func:`losses.functional.nkd`), weight 1 with CE 1. Defaults are the repository's only
CIFAR-100 config (``res34_distill_res18_cifar.py``): temp 3, gamma 3.5; the class defaults
(and the ImageNet CNN configs) are temp 1, gamma 1.5. No trainable parts.
"""

from __future__ import annotations

from losses import functional
from losses.registry import LOGITS, DistillLoss, HParam, register_loss


@register_loss("nkd")
class NKDLoss(DistillLoss):
    """Target cross-entropy weighted by the teacher, plus normalised non-target CE; weight 1."""

    default_weight = 1.0
    hparams = {
        "T": HParam(3.0, 1.0, 8.0, log=True),
        "gamma": HParam(3.5, 0.5, 10.0, log=True),
    }
    needs_labels = True
    logit_host = True

    def forward(self, student_feats, teacher_feats, labels=None, indices=None):
        return functional.nkd(student_feats[LOGITS], teacher_feats[LOGITS],
                              self.require(labels, "labels"), self.temperature(),
                              self.config["gamma"])
