"""ReviewKD: distilling knowledge via knowledge review (Chen et al., CVPR 2021).

Official code: dvlab-research/ReviewKD (CIFAR-100/model/reviewkd.py ``hcl``, ``ABF``) and the
mdistiller port (``hcl_loss``, identical). Inputs, per level from shallow to deep:

- student: the stage maps after their ReLU (``stageK``) plus the pooled embedding as a 1x1 map;
- teacher: the stage maps before their ReLU (``preact_stageK``) plus the pooled embedding.

Stages pair from the deepest (mdistiller's ``_align_list``), truncated to the shorter side.
Attention-based fusion (ABF), from the deepest level up: conv1x1 (in -> mid, no bias) + BN with
mid = min(512, student embedding dim); except at the deepest level, the fused map of the level
below is nearest-resized to this level's size, concatenated, and conv1x1 (2 mid -> 2) +
sigmoid gives two spatial weights: x a0 + y a1; the result is nearest-resized to the teacher
map's size and becomes the residual passed up; conv3x3 (mid -> teacher channels, no bias) + BN
gives the level's output. Both convs kaiming_uniform(a=1). L = :func:`review_hcl` of the
outputs against the teacher maps, times a linear warm-up over ``warmup_epochs`` (20):
min((e + 1) / 20, 1) for the 0-based epoch e (mdistiller; the authors' trainer counts from 0,
so their loss is off in the first epoch). Weight 5 (the authors' and mdistiller's
resnet32x4 -> resnet8x4 and wrn_40_2 pairs). The ABFs are trained and unused at test time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from losses import functional
from losses.parts import as_map
from losses.registry import EMBEDDING, PREACT_STAGE, STAGE, DistillLoss, register_loss

MAX_MID_CHANNELS = 512


class ABF(nn.Module):
    """One level of attention-based fusion (see the module docstring)."""

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, fuse: bool):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(in_channels, mid_channels, 1, bias=False),
                                   nn.BatchNorm2d(mid_channels))
        self.conv2 = nn.Sequential(nn.Conv2d(mid_channels, out_channels, 3, padding=1, bias=False),
                                   nn.BatchNorm2d(out_channels))
        self.att_conv = (nn.Sequential(nn.Conv2d(2 * mid_channels, 2, 1), nn.Sigmoid())
                         if fuse else None)
        nn.init.kaiming_uniform_(self.conv1[0].weight, a=1)
        nn.init.kaiming_uniform_(self.conv2[0].weight, a=1)

    def forward(self, x: Tensor, residual: Tensor | None, out_size: tuple[int, int]
                ) -> tuple[Tensor, Tensor]:
        """(output in the teacher's shape, fused map passed to the next level up)."""
        x = self.conv1(x)
        if self.att_conv is not None:
            y = F.interpolate(residual, size=tuple(x.shape[2:]), mode="nearest")
            attention = self.att_conv(torch.cat([x, y], dim=1))
            x = x * attention[:, 0:1] + y * attention[:, 1:2]
        if tuple(x.shape[2:]) != tuple(out_size):
            x = F.interpolate(x, size=tuple(out_size), mode="nearest")
        return self.conv2(x), x


@register_loss("reviewkd")
class ReviewKDLoss(DistillLoss):
    """Hierarchical context loss of ABF-fused student maps against the teacher's; weight 5."""

    default_weight = 5.0
    options = {"warmup_epochs": 20}

    def __init__(self, student_taps, teacher_taps, context=None, **config):
        super().__init__(student_taps, teacher_taps, context, **config)
        pairs = self.paired_stage_taps(STAGE, PREACT_STAGE, align="last")
        self.student_levels = [s for s, _ in pairs] + [EMBEDDING]
        self.teacher_levels = [t for _, t in pairs] + [EMBEDDING]
        s_shapes = [self.use_student_tap(tap) for tap in self.student_levels]
        t_shapes = [self.use_teacher_tap(tap) for tap in self.teacher_levels]
        mid = min(MAX_MID_CHANNELS, s_shapes[-1][0])
        self.out_sizes = [tuple(shape[1:]) or (1, 1) for shape in t_shapes]
        # Deepest level first: the order of the fusion.
        self.abfs = nn.ModuleList(
            ABF(s[0], mid, t[0], fuse=index > 0)
            for index, (s, t) in enumerate(zip(s_shapes[::-1], t_shapes[::-1])))

    def fused_student_maps(self, student_feats) -> list[Tensor]:
        """The ABF outputs, shallow to deep, each in its teacher map's shape."""
        inputs = [student_feats[tap] for tap in self.student_levels]
        inputs[-1] = as_map(inputs[-1])
        outputs, residual = [], None
        for abf, x, size in zip(self.abfs, inputs[::-1], self.out_sizes[::-1]):
            out, residual = abf(x, residual, size)
            outputs.insert(0, out)
        return outputs

    def forward(self, student_feats, teacher_feats, labels=None, indices=None):
        targets = [teacher_feats[tap] for tap in self.teacher_levels]
        targets[-1] = as_map(targets[-1])
        value = functional.review_hcl(self.fused_student_maps(student_feats), targets)
        return self.warmup_factor(int(self.config["warmup_epochs"])) * value
