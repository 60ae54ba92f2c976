"""Hinton's knowledge distillation on logits (PROTOCOL §3 KD), T = 4 by default.

Default weight 0.9 is the KD *baseline*'s (ce 0.1 + kd 0.9). In "X+KD" runs PROTOCOL §1 uses
kd weight 1: :func:`losses.composite.expand_loss_label` writes that weight out explicitly.
"""

from __future__ import annotations

from losses import functional
from losses.registry import LOGITS, DistillLoss, HParam, register_loss


@register_loss("kd")
class KDLoss(DistillLoss):
    """``T^2 * KL(softmax(z_t/T) || softmax(z_s/T))``, summed over classes, mean over the batch."""

    default_weight = 0.9
    hparams = {"T": HParam(4.0, 1.0, 16.0, log=True)}
    logit_host = True

    def forward(self, student_feats, teacher_feats, labels=None, indices=None):
        return functional.kd(student_feats[LOGITS], teacher_feats[LOGITS], self.temperature())
