"""A comprehensive overhaul of feature distillation (Heo et al., ICCV 2019).

Official code: clovaai/overhaul-distillation (CIFAR-100/distiller.py ``distillation_loss``,
``get_margin_from_BN``) and the mdistiller port (``OFD.py``, ``feat_loss``). Reads the
pre-ReLU stage maps of both nets (``preact_stageK``), paired from the deepest stage
(mdistiller's ``_align_list``). Per pair a connector, conv1x1 (s -> t channels, no bias) + BN
initialised N(0, 2 / t) / (1, 0), maps the student map to the teacher's channels; the teacher
map is average-pooled to the student's size. Margins, one per teacher channel, come from the
BatchNorm before the teacher's ReLU at that tap (:func:`losses.functional.ofd_margin`),
computed once at construction into buffers. L = :func:`losses.functional.ofd` (partial L2,
sum / batch, stage i of K weighted 1 / 2^(K-1-i)); weight 1e-3 with CE 1 (mdistiller's
FEAT_WEIGHT; clovaai's ``loss / batch / 1000``).

Deviation: both official codes run the teacher in *train* mode (BN batch statistics); kdbench
keeps the teacher in eval mode as PROTOCOL §1 says. ShuffleNets declare no BN before their
ReLU, so they cannot be OFD teachers (as published).
"""

from __future__ import annotations

from torch import nn

from losses import functional
from losses.parts import conv1x1_bn
from losses.registry import PREACT_STAGE, DistillLoss, register_loss


@register_loss("ofd")
class OFDLoss(DistillLoss):
    """Margin-based partial L2 between connected student and teacher pre-ReLU maps; 1e-3."""

    default_weight = 1e-3
    needs_context = True
    needs_teacher = True

    def __init__(self, student_taps, teacher_taps, context=None, **config):
        super().__init__(student_taps, teacher_taps, context, **config)
        import models

        self.pairs = self.paired_stage_taps(PREACT_STAGE, align="last")
        self.connectors = nn.ModuleList(
            conv1x1_bn(self.student_taps[s][0], self.teacher_taps[t][0]) for s, t in self.pairs)
        for index, (_, tap) in enumerate(self.pairs):
            bn = models.bn_before_relu(context.teacher, tap)
            self.register_buffer(f"margin{index}", functional.ofd_margin(bn.weight, bn.bias))

    def margins(self) -> list:
        return [getattr(self, f"margin{index}") for index in range(len(self.pairs))]

    def forward(self, student_feats, teacher_feats, labels=None, indices=None):
        connected = [connector(student_feats[s])
                     for connector, (s, _) in zip(self.connectors, self.pairs)]
        return functional.ofd(connected, [teacher_feats[t] for _, t in self.pairs],
                              self.margins())
