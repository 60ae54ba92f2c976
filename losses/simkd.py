"""SimKD: knowledge distillation with the reused teacher classifier (Chen et al., CVPR 2022),
official code: DefangChen/SimKD (``models/util.py`` ``SimKD``, ``helper/loops.py``).

The last stage maps (``last``, the published feat[-2]) are aligned in size (the larger one is
average-pooled to the smaller), and a projector maps the student's to the teacher's channels:
conv1x1 (s -> t/f) + BN + ReLU, conv3x3 (t/f -> t/f) + BN + ReLU, conv1x1 (t/f -> t) + BN +
ReLU, no conv biases, factor f = 2. L = MSE(projected student map, teacher map)
(:func:`losses.functional.hint`), weight 1, CE weight 0 (the official ``-c 0 -d 0 -b 1``:
the label ``simkd`` is {ce: 0, simkd: 1}). SimKD owns the student's head: training and test
accuracy use the teacher's classifier (a frozen copy in buffers) on the pooled projection
(:meth:`SimKDLoss.head_logits`), and the projector and classifier copy are saved with the
student's weights (under ``head.``); the transfer probe uses the student's own embedding.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from losses import functional
from losses.parts import FrozenTeacherClassifier, global_pool
from losses.registry import LAST, DistillLoss, register_loss


def simkd_projector(in_channels: int, out_channels: int, factor: int) -> nn.Sequential:
    """The bottleneck projector: 1x1, 3x3, 1x1 convolutions, each with BN and ReLU."""
    mid = out_channels // factor
    return nn.Sequential(
        nn.Conv2d(in_channels, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(),
        nn.Conv2d(mid, mid, 3, padding=1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(),
        nn.Conv2d(mid, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(),
    )


def align_sizes(f_s: Tensor, f_t: Tensor) -> tuple[Tensor, Tensor]:
    """Pool the student map to the teacher's height when larger, else the teacher's to the
    student's (SimKD's spatial alignment)."""
    if f_s.shape[2] > f_t.shape[2]:
        return F.adaptive_avg_pool2d(f_s, tuple(f_t.shape[2:])), f_t
    return f_s, F.adaptive_avg_pool2d(f_t, tuple(f_s.shape[2:]))


@register_loss("simkd")
class SimKDLoss(DistillLoss):
    """MSE between the projected student map and the teacher's last map; weight 1."""

    default_weight = 1.0
    options = {"factor": 2}
    needs_context = True
    needs_teacher = True
    owns_head = True
    ce_weight = 0.0

    def __init__(self, student_taps, teacher_taps, context=None, **config):
        super().__init__(student_taps, teacher_taps, context, **config)
        s_channels = self.use_student_tap(LAST)[0]
        t_channels = self.use_teacher_tap(LAST)[0]
        self.teacher_size = tuple(self.teacher_taps[LAST][1:])
        self.projector = simkd_projector(s_channels, t_channels, int(self.config["factor"]))
        self.teacher_classifier = FrozenTeacherClassifier(context.teacher, self.name)

    def project(self, f_s: Tensor, f_t: Tensor) -> tuple[Tensor, Tensor]:
        source, target = align_sizes(f_s, f_t)
        return self.projector(source), target

    def head_logits(self, student_feats) -> Tensor:
        """SimKD's prediction: the teacher's classifier on the pooled projected student map
        (the student map pooled to the teacher's size when larger, as in training)."""
        f_s = student_feats[LAST]
        if f_s.shape[2] > self.teacher_size[0]:
            f_s = F.adaptive_avg_pool2d(f_s, self.teacher_size)
        return self.teacher_classifier(global_pool(self.projector(f_s)))

    def student_logits(self, student_feats, teacher_feats) -> Tensor:
        """Training-time form of :meth:`head_logits` (sizes aligned with the teacher map)."""
        projected, _ = self.project(student_feats[LAST], teacher_feats[LAST])
        return self.teacher_classifier(global_pool(projected))

    def forward(self, student_feats, teacher_feats, labels=None, indices=None):
        projected, target = self.project(student_feats[LAST], teacher_feats[LAST])
        # The prediction of this same forward (the official pred_feat_s): training accuracy.
        self.last_head_logits = self.teacher_classifier(global_pool(projected)).detach()
        return functional.hint(projected, target)
