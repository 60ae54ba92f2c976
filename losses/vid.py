"""Variational information distillation (Ahn et al., CVPR 2019), PROTOCOL §3 VID.

Every stage pair (zip of student and teacher stages, truncated to the shorter, as the published
``feat[1:-1]``). Per pair the larger map is pooled to the smaller, then a regressor predicts the
teacher map: 1x1 conv (s_C -> t_C), ReLU, 1x1 conv, ReLU, 1x1 conv (no bias, no BN; the middle
width is t_C as published). The variance is sigma^2 = softplus(p) + 1e-5 per teacher channel,
initialised so that sigma^2 = ``init_variance`` (5). Regressors and variances are trained.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from losses import functional
from losses.functional import VID_EPS, pool_larger_map
from losses.registry import DistillLoss, HParam, register_loss


def vid_regressor(in_channels: int, mid_channels: int, out_channels: int) -> nn.Sequential:
    """1x1 conv, ReLU, 1x1 conv, ReLU, 1x1 conv, all without bias."""
    return nn.Sequential(
        nn.Conv2d(in_channels, mid_channels, kernel_size=1, bias=False), nn.ReLU(),
        nn.Conv2d(mid_channels, mid_channels, kernel_size=1, bias=False), nn.ReLU(),
        nn.Conv2d(mid_channels, out_channels, kernel_size=1, bias=False),
    )


def inverse_softplus(value: float) -> float:
    """p with softplus(p) = value."""
    return math.log(math.expm1(value))


class VIDPair(nn.Module):
    """Regressor and per-channel variance parameter for one stage pair."""

    def __init__(self, student_channels: int, teacher_channels: int, init_variance: float):
        super().__init__()
        self.regressor = vid_regressor(student_channels, teacher_channels, teacher_channels)
        raw = inverse_softplus(init_variance - VID_EPS)
        self.log_scale = nn.Parameter(torch.full((teacher_channels,), raw))

    def forward(self, f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        f_s, f_t = pool_larger_map(f_s, f_t)
        return functional.vid(self.regressor(f_s), f_t, self.log_scale)


@register_loss("vid")
class VIDLoss(DistillLoss):
    """Sum over stage pairs of the Gaussian negative log-likelihood of the teacher map; beta 1."""

    default_weight = 1.0
    hparams = {"init_variance": HParam(5.0, 0.5, 50.0, log=True)}

    def __init__(self, student_taps, teacher_taps, context=None, **config):
        super().__init__(student_taps, teacher_taps, context, **config)
        self.pairs = self.paired_stage_taps()
        init_variance = float(self.config["init_variance"])
        self.stage_losses = nn.ModuleList(
            VIDPair(self.student_taps[s][0], self.teacher_taps[t][0], init_variance)
            for s, t in self.pairs)

    def forward(self, student_feats, teacher_feats, labels=None, indices=None):
        losses = [pair(student_feats[s], teacher_feats[t])
                  for (s, t), pair in zip(self.pairs, self.stage_losses)]
        return sum(losses[1:], losses[0])
