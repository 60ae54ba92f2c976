"""KD-SVD: self-supervised knowledge distillation using singular value decomposition (Lee et
al., ECCV 2018). kdbench follows the CRD benchmark's port (HobbitLong/RepDistiller
``distiller_zoo/KDSVD.py``), which views each map as b x HW x C like the authors' TensorFlow
code (sseung0703/SSKD_SVD, NHWC); mdistiller's port views it as b x (C H) x W and gives other
values.

Reads every stage pair (feat[1:-1], zip truncated to the shorter); channels must match per
pair (otherwise a ``UserError``). L = :func:`losses.functional.kdsvd` with k = 1, weight 1 with
CE 1 (mdistiller's FEAT_WEIGHT; the CRD paper has no KD-SVD row). No trainable parts. The
value depends on the signs the SVD routine returns.
"""

from __future__ import annotations

from benchmark.errors import user_error
from losses import functional
from losses.registry import DistillLoss, register_loss


@register_loss("kdsvd")
class KDSVDLoss(DistillLoss):
    """RBF relations of aligned singular vectors across consecutive stages; weight 1."""

    default_weight = 1.0
    options = {"k": 1}

    def __init__(self, student_taps, teacher_taps, context=None, **config):
        super().__init__(student_taps, teacher_taps, context, **config)
        self.pairs = self.paired_stage_taps()
        mismatched = [(s, self.student_taps[s][0], self.teacher_taps[t][0])
                      for s, t in self.pairs if self.student_taps[s][0] != self.teacher_taps[t][0]]
        if mismatched or len(self.pairs) < 2:
            raise user_error(
                f"KD-SVD needs >= 2 stage pairs with equal channel counts; got {len(self.pairs)} "
                f"pairs, mismatched (tap, student, teacher): {mismatched}", "loss 'kdsvd'",
                "Use KD-SVD on a same-family pair with equal widths (e.g. resnet32x4 -> "
                "resnet8x4)")

    def forward(self, student_feats, teacher_feats, labels=None, indices=None):
        return functional.kdsvd([student_feats[s] for s, _ in self.pairs],
                                [teacher_feats[t] for _, t in self.pairs], int(self.config["k"]))
