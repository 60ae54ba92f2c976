"""Neuron selectivity transfer (Huang & Wang, 2017), PROTOCOL §3 NST.

Every stage pair (zip of student and teacher stages, truncated to the shorter, as the published
``feat[1:-1]``): MMD^2 with the polynomial kernel (x^T y)^2 between L2-normalised channel maps;
L = sum over stage pairs.
"""

from __future__ import annotations

from losses import functional
from losses.registry import DistillLoss, register_loss


@register_loss("nst")
class NSTLoss(DistillLoss):
    """Sum over stage pairs of the polynomial-kernel MMD^2 of channel maps; beta 50."""

    default_weight = 50.0

    def __init__(self, student_taps, teacher_taps, context=None, **config):
        super().__init__(student_taps, teacher_taps, context, **config)
        self.pairs = self.paired_stage_taps()

    def forward(self, student_feats, teacher_feats, labels=None, indices=None):
        losses = [functional.nst(student_feats[s], teacher_feats[t]) for s, t in self.pairs]
        return sum(losses[1:], losses[0])
