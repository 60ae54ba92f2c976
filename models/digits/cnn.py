"""Plain CNNs for the 8x8 grayscale ``digits`` data set: a teacher and a same-family student.

``digits_cnn_large`` (teacher, ~99k parameters, most of them at half resolution where they cost
a quarter of the compute) and ``digits_cnn_small`` (student, ~7.5k): a conv-BN-ReLU ``stem`` at
full resolution, ``layer1`` at full resolution, ``layer2`` at half resolution (first conv
stride 2), global average pool, ``fc``. Every ReLU is out-of-place, so
tapped outputs are never modified later. Taps: ``stem``, ``stage1`` = ``layer1`` (8x8),
``stage2`` = ``layer2`` (4x4 for 8x8 input, the ``last`` tap), ``embedding`` = ``fc:input``;
``preact_stage1..2`` = each stage's last BN output (before its ReLU), also its BN before ReLU.
"""

from __future__ import annotations

import torch
from torch import nn

from models.registry import register_model
from models.taps import preact_taps, standard_taps

DIGITS_CNN_TAPS = standard_taps("stem", ["layer1", "layer2"], "fc:input")


def digits_cnn_taps(stage1: list[int], stage2: list[int]) -> tuple[dict, dict]:
    """(taps, bn_before_relu) for stages of the given widths: the last layer's BN (``.1``)."""
    bns = [f"layer{i}.{len(widths) - 1}.1" for i, widths in ((1, stage1), (2, stage2))]
    return {**DIGITS_CNN_TAPS, **preact_taps(bns)}, dict(zip(preact_taps(bns), bns))


LARGE, SMALL = ([48], [64, 96]), ([16], [32])


def conv_bn_relu(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """3x3 conv (no bias) - BN - ReLU (out of place)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
    )


def conv_stage(in_channels: int, widths: list[int], stride: int) -> nn.Sequential:
    """A stage of conv-BN-ReLU layers; only the first may be strided."""
    layers = []
    for index, width in enumerate(widths):
        layers.append(conv_bn_relu(in_channels, width, stride if index == 0 else 1))
        in_channels = width
    return nn.Sequential(*layers)


class DigitsCNN(nn.Module):
    """Stem, a full-resolution stage, a half-resolution stage, pool, linear classifier."""

    def __init__(self, stem_width: int, stage1: list[int], stage2: list[int],
                 num_classes: int = 10, in_chans: int = 1):
        super().__init__()
        self.stem = conv_bn_relu(in_chans, stem_width)
        self.layer1 = conv_stage(stem_width, stage1, stride=1)
        self.layer2 = conv_stage(stage1[-1], stage2, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(stage2[-1], num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer2(self.layer1(self.stem(x)))
        return self.fc(self.flatten(self.avgpool(x)))


_LARGE_TAPS, _LARGE_BNS = digits_cnn_taps(*LARGE)
_SMALL_TAPS, _SMALL_BNS = digits_cnn_taps(*SMALL)


@register_model(name="digits_cnn_large", taps=_LARGE_TAPS, bn_before_relu=_LARGE_BNS)
def digits_cnn_large(num_classes: int = 10, in_chans: int = 1) -> DigitsCNN:
    """Teacher for digits: stem 32, layer1 [48], layer2 [64, 96] (~99k parameters)."""
    return DigitsCNN(32, *LARGE, num_classes=num_classes, in_chans=in_chans)


@register_model(name="digits_cnn_small", taps=_SMALL_TAPS, bn_before_relu=_SMALL_BNS)
def digits_cnn_small(num_classes: int = 10, in_chans: int = 1) -> DigitsCNN:
    """Same-family student for digits: stem 16, layer1 [16], layer2 [32] (~7.6k parameters)."""
    return DigitsCNN(16, *SMALL, num_classes=num_classes, in_chans=in_chans)
