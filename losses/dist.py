"""DIST: knowledge distillation from a stronger teacher (Huang et al., NeurIPS 2022).

Official code: hunto/image_classification_sota (pinned by hunto/DIST_KD), ``DIST``. The CIFAR
config ``dist_cifar.yaml`` uses ``dist_t4``: tau 4, beta 1 (inter-class), gamma 1
(intra-class), loss weight 2 with CE 1 (:func:`losses.functional.dist`). Logits only; no
trainable parts. The intra-class term correlates each class across the batch, so the loss
depends on the batch size (the official recipe uses batch 64 on CIFAR).
"""

from __future__ import annotations

from losses import functional
from losses.registry import LOGITS, DistillLoss, HParam, register_loss


@register_loss("dist")
class DISTLoss(DistillLoss):
    """tau^2 (beta * inter + gamma * intra) Pearson relation losses; weight 2."""

    default_weight = 2.0
    hparams = {
        "tau": HParam(4.0, 1.0, 8.0, log=True),
        "beta": HParam(1.0, 0.1, 10.0, log=True),
        "gamma": HParam(1.0, 0.1, 10.0, log=True),
    }
    logit_host = True

    def forward(self, student_feats, teacher_feats, labels=None, indices=None):
        return functional.dist(student_feats[LOGITS], teacher_feats[LOGITS],
                               self.config["beta"], self.config["gamma"], self.config["tau"])
