"""Probabilistic knowledge transfer (Passalis & Tefas, ECCV 2018), PROTOCOL §3 PKT, on the
pooled ``embedding`` of both nets."""

from __future__ import annotations

from losses import functional
from losses.registry import EMBEDDING, DistillLoss, register_loss


@register_loss("pkt")
class PKTLoss(DistillLoss):
    """KL between the cosine-similarity distributions of the two embeddings; beta 30000."""

    default_weight = 30000.0

    def __init__(self, student_taps, teacher_taps, context=None, **config):
        super().__init__(student_taps, teacher_taps, context, **config)
        self.use_student_tap(EMBEDDING)
        self.use_teacher_tap(EMBEDDING)

    def forward(self, student_feats, teacher_feats, labels=None, indices=None):
        return functional.pkt(student_feats[EMBEDDING], teacher_feats[EMBEDDING])
