"""Attention transfer (Zagoruyko & Komodakis, ICLR 2017), PROTOCOL §3 AT.

Every stage pair: zip(student stages, teacher stages), truncated to the shorter like the
published code's ``feat[1:-1]`` (stages exclude the stem). Per pair the larger map is pooled to
the smaller; attention maps are L2-normalised channel means of f^p; L = sum of per-stage MSEs.
"""

from __future__ import annotations

from losses import functional
from losses.registry import DistillLoss, HParam, register_loss


@register_loss("at")
class ATLoss(DistillLoss):
    """Sum over stage pairs of ``mean((a_s - a_t)^2)``, ``a = normalise(mean_c f^p)``; beta 1000."""

    default_weight = 1000.0
    hparams = {"p": HParam(2, 1, 4, log=False)}

    def __init__(self, student_taps, teacher_taps, context=None, **config):
        super().__init__(student_taps, teacher_taps, context, **config)
        self.p = int(self.config["p"])
        self.pairs = self.paired_stage_taps()

    def forward(self, student_feats, teacher_feats, labels=None, indices=None):
        fs = [student_feats[s] for s, _ in self.pairs]
        ft = [teacher_feats[t] for _, t in self.pairs]
        return functional.attention(fs, ft, self.p)
