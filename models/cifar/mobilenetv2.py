"""MobileNetV2 for CIFAR (expansion 6, width 0.5) as in the CRD benchmark code (``mobile_half``).

Published module names and shapes: ``conv1`` (3x3 stride-2 conv-BN-ReLU), seven groups
``blocks.0..6`` of inverted residuals (each ``conv`` = pw, dw, pw-linear), ``conv2`` (1x1 to
1280, BN, ReLU), global average pool, ``classifier`` (Sequential of one Linear).
Taps follow the published feature list: ``stem`` = ``conv1``; ``stage1..4`` = ``blocks.1``,
``blocks.2``, ``blocks.4``, ``blocks.6``. The last tap is a linear bottleneck output (no ReLU),
160x2x2 at 32x32 input; the embedding is the 1280-d pooled ``conv2`` output. Stage outputs
have no ReLU, so ``preact_stage1..4`` are the same tensors (as published); the BN before the
(absent) ReLU is each group's last projection BN (published ``get_bn_before_relu``).
"""

from __future__ import annotations


import torch
from torch import nn

from models.cifar.init import published_init

from models.registry import register_model
from models.taps import preact_taps, standard_taps

_MOBILENETV2_STAGES = ["blocks.1", "blocks.2", "blocks.4", "blocks.6"]
MOBILENETV2_TAPS = {**standard_taps("conv1", _MOBILENETV2_STAGES, "classifier:input"),
                    **preact_taps(_MOBILENETV2_STAGES)}
# The last inverted residual of each tapped group ends in its projection BN (conv.7).
MOBILENETV2_BN_BEFORE_RELU = {
    tap: f"{path}.{blocks - 1}.conv.7" for tap, path, blocks in
    zip(preact_taps(_MOBILENETV2_STAGES), _MOBILENETV2_STAGES, (2, 3, 3, 1))}

# expansion t, channels c, repeats n, first stride s (the published setting; t=T for groups 1..6)
INVERTED_RESIDUAL_SETTING = [
    (1, 16, 1, 1), (None, 24, 2, 1), (None, 32, 3, 2), (None, 64, 4, 2),
    (None, 96, 3, 1), (None, 160, 3, 2), (None, 320, 1, 1),
]


def conv_bn_relu(inp: int, oup: int, kernel_size: int, stride: int) -> nn.Sequential:
    """conv (no bias) - BN - ReLU, keys ``0`` (conv) and ``1`` (BN) as published."""
    return nn.Sequential(
        nn.Conv2d(inp, oup, kernel_size, stride, kernel_size // 2, bias=False),
        nn.BatchNorm2d(oup),
        nn.ReLU(inplace=True),
    )


class InvertedResidual(nn.Module):
    """1x1 expand - 3x3 depthwise - 1x1 linear projection, residual when shapes allow."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = inp * expand_ratio
        self.use_res_connect = stride == 1 and inp == oup
        self.conv = nn.Sequential(
            nn.Conv2d(inp, hidden, 1, 1, 0, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, oup, 1, 1, 0, bias=False),
            nn.BatchNorm2d(oup),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


class CifarMobileNetV2(nn.Module):
    """MobileNetV2 with expansion ``expansion`` and width multiplier ``width_mult``."""

    def __init__(self, expansion: int = 6, width_mult: float = 0.5, num_classes: int = 100,
                 in_chans: int = 3):
        super().__init__()
        input_channel = int(32 * width_mult)
        self.conv1 = conv_bn_relu(in_chans, input_channel, 3, 2)
        self.blocks = nn.ModuleList()
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            output_channel = int(c * width_mult)
            layers = []
            for stride in [s] + [1] * (n - 1):
                layers.append(InvertedResidual(input_channel, output_channel, stride,
                                               expansion if t is None else t))
                input_channel = output_channel
            self.blocks.append(nn.Sequential(*layers))
        self.last_channel = int(1280 * width_mult) if width_mult > 1.0 else 1280
        self.conv2 = conv_bn_relu(input_channel, self.last_channel, 1, 1)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.classifier = nn.Sequential(nn.Linear(self.last_channel, num_classes))
        published_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        for block in self.blocks:
            out = block(out)
        out = self.conv2(out)
        return self.classifier(self.flatten(self.avgpool(out)))


@register_model(name="mobilenetv2", aliases=("MobileNetV2", "mobile_half"),
                taps=MOBILENETV2_TAPS, bn_before_relu=MOBILENETV2_BN_BEFORE_RELU)
def mobilenetv2(num_classes: int = 100, in_chans: int = 3) -> CifarMobileNetV2:
    """The CRD benchmark's MobileNetV2 (expansion 6, width 0.5; 0.81M parameters)."""
    return CifarMobileNetV2(expansion=6, width_mult=0.5, num_classes=num_classes,
                            in_chans=in_chans)
