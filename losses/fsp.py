"""Flow of solution procedure (Yim et al., CVPR 2017), as in the CRD benchmark code
(HobbitLong/RepDistiller ``distiller_zoo/FSP.py``; the authors published no code).

Reads the stem and every stage map of both nets (the published feat[:-1]); both nets must have
as many such taps and equal channel counts at each (otherwise a ``UserError``, as the published
``ValueError``: FSP runs on same-family pairs only, wrn_40_2 -> wrn_40_1 is n/a in the CRD
table). L = :func:`losses.functional.fsp` (mean over entries per FSP matrix pair, summed; the
paper sums the squared Frobenius norm). No trainable parts.

The published protocol, which kdbench runs (benchmark/stages.py): a pre-training stage of
``pretrain_epochs`` (30) training the student's feature layers (everything but its
classifier) on this loss alone, unweighted; then CE-only training (``stage_only``; the
published ``-b 50`` has no effect, and the weight 50 here is recorded but unused).
"""

from __future__ import annotations

from benchmark.errors import user_error
from losses import functional
from losses.parts import feature_parameters
from losses.registry import DistillLoss, register_loss, stage_tap_names

PRETRAIN_EPOCHS = 30


@register_loss("fsp")
class FSPLoss(DistillLoss):
    """Squared difference of FSP (Gram across consecutive layers) matrices; weight 50."""

    default_weight = 50.0
    options = {"pretrain_epochs": PRETRAIN_EPOCHS}
    stage_only = True

    def __init__(self, student_taps, teacher_taps, context=None, **config):
        super().__init__(student_taps, teacher_taps, context, **config)
        self.student_layers = ["stem", *stage_tap_names(self.student_taps)]
        self.teacher_layers = ["stem", *stage_tap_names(self.teacher_taps)]
        s_channels = [self.use_student_tap(tap)[0] for tap in self.student_layers]
        t_channels = [self.use_teacher_tap(tap)[0] for tap in self.teacher_layers]
        if s_channels != t_channels:
            raise user_error(
                f"FSP needs the same channel counts at the stem and every stage of both nets; "
                f"the student has {s_channels}, the teacher {t_channels}", "loss 'fsp'",
                "Use FSP on a same-family pair with equal widths (e.g. resnet32x4 -> resnet8x4, "
                "wrn_40_2 -> wrn_16_2), as the CRD benchmark does")

    def pretrain_parameters(self, student):
        return feature_parameters(student)

    def forward(self, student_feats, teacher_feats, labels=None, indices=None):
        return functional.fsp([student_feats[t] for t in self.student_layers],
                              [teacher_feats[t] for t in self.teacher_layers])
