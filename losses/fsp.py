"""Flow of solution procedure (Yim et al., CVPR 2017), as in the CRD benchmark code
(HobbitLong/RepDistiller ``distiller_zoo/FSP.py``; the authors published no code).

Reads the stem and every stage map of both nets (the published feat[:-1]); both nets must have
as many such taps and equal channel counts at each (otherwise a ``UserError``, as the published
``ValueError``: FSP runs on same-family pairs only, wrn_40_2 -> wrn_40_1 is n/a in the CRD
table). L = :func:`losses.functional.fsp` (mean over entries per FSP matrix pair, summed; the
paper sums the squared Frobenius norm). No trainable parts.

Published protocol: FSP is a 30-epoch pre-training stage of the student's feature layers with
this loss alone, followed by CE-only training (``-b 50`` has no effect there). Until kdbench's
engine runs stages, ``fsp`` trains jointly with CE at weight 50 (see docs/losses.md).
"""

from __future__ import annotations

from benchmark.errors import user_error
from losses import functional
from losses.registry import DistillLoss, register_loss, stage_tap_names

PRETRAIN_EPOCHS = 30


@register_loss("fsp")
class FSPLoss(DistillLoss):
    """Squared difference of FSP (Gram across consecutive layers) matrices; weight 50."""

    default_weight = 50.0
    options = {"pretrain_epochs": PRETRAIN_EPOCHS}

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

    def forward(self, student_feats, teacher_feats, labels=None, indices=None):
        return functional.fsp([student_feats[t] for t in self.student_layers],
                              [teacher_feats[t] for t in self.teacher_layers])
