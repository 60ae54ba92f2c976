"""Correlation congruence (Peng et al., ICCV 2019) as in the published CRD code, PROTOCOL §3 CC.

Both pooled embeddings go through their own trained linear map (with bias) to ``feat_dim`` =
128; L = mean over consecutive samples of sum_d |e_s - e_t|[i] * |e_s - e_t|[i+1].
"""

from __future__ import annotations

from torch import nn

from losses import functional
from losses.registry import EMBEDDING, DistillLoss, HParam, register_loss


@register_loss("cc")
class CCLoss(DistillLoss):
    """CC on trained 128-d linear embeddings of both sides; beta 0.02."""

    default_weight = 0.02
    hparams = {"feat_dim": HParam(128, 16, 1024, log=True)}

    def __init__(self, student_taps, teacher_taps, context=None, **config):
        super().__init__(student_taps, teacher_taps, context, **config)
        feat_dim = int(self.config["feat_dim"])
        student_dim = _flat_size(self.use_student_tap(EMBEDDING))
        teacher_dim = _flat_size(self.use_teacher_tap(EMBEDDING))
        self.embed_student = nn.Linear(student_dim, feat_dim)
        self.embed_teacher = nn.Linear(teacher_dim, feat_dim)

    def forward(self, student_feats, teacher_feats, labels=None, indices=None):
        e_s = self.embed_student(student_feats[EMBEDDING].flatten(1))
        e_t = self.embed_teacher(teacher_feats[EMBEDDING].flatten(1))
        return functional.cc(e_s, e_t)


def _flat_size(shape: tuple[int, ...]) -> int:
    size = 1
    for dim in shape:
        size *= dim
    return size
