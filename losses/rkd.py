"""Relational knowledge distillation (Park et al., CVPR 2019), PROTOCOL §3 RKD.

On the pooled ``embedding`` of both nets: L = 25 * distance term + 50 * angle term (the two
inner weights are hyperparameters); the registry weight (beta) is 1.
"""

from __future__ import annotations

from losses import functional
from losses.registry import EMBEDDING, DistillLoss, HParam, register_loss


@register_loss("rkd")
class RKDLoss(DistillLoss):
    """``distance_weight * rkd_distance + angle_weight * rkd_angle`` on embeddings; beta 1."""

    default_weight = 1.0
    hparams = {
        "distance_weight": HParam(25.0, 1.0, 250.0, log=True),
        "angle_weight": HParam(50.0, 1.0, 500.0, log=True),
    }

    def __init__(self, student_taps, teacher_taps, context=None, **config):
        super().__init__(student_taps, teacher_taps, context, **config)
        self.distance_weight = float(self.config["distance_weight"])
        self.angle_weight = float(self.config["angle_weight"])
        self.use_student_tap(EMBEDDING)
        self.use_teacher_tap(EMBEDDING)

    def forward(self, student_feats, teacher_feats, labels=None, indices=None):
        e_s, e_t = student_feats[EMBEDDING], teacher_feats[EMBEDDING]
        return (self.distance_weight * functional.rkd_distance(e_s, e_t)
                + self.angle_weight * functional.rkd_angle(e_s, e_t))
