"""A tiny residual network for the 8x8 ``digits`` data set: the cross-family student.

``digits_resnet_tiny`` (~20k parameters): conv-BN-ReLU ``stem`` (16 channels), ``layer1`` = one
basic block at full resolution, ``layer2`` = one strided basic block with a 1x1 projection
(32 channels, half resolution), global average pool, ``fc``. Blocks are the CIFAR ResNet's
(ReLU after the residual sum, out of place). Taps: ``stem``, ``stage1`` = ``layer1`` (8x8),
``stage2`` = ``layer2`` (4x4 for 8x8 input, the ``last`` tap), ``embedding`` = ``fc:input``;
``preact_stage1..2`` = each block's residual sum before its ReLU (BN before ReLU: ``bn2``).
"""

from __future__ import annotations

import torch
from torch import nn

from models.cifar.resnet import BasicBlock
from models.digits.cnn import conv_bn_relu
from models.registry import register_model
from models.taps import preact_taps, standard_taps

DIGITS_RESNET_TAPS = {**standard_taps("stem", ["layer1", "layer2"], "fc:input"),
                      **preact_taps(["layer1.out_relu:input", "layer2.out_relu:input"])}
DIGITS_RESNET_BN_BEFORE_RELU = {"preact_stage1": "layer1.bn2", "preact_stage2": "layer2.bn2"}


class DigitsResNetTiny(nn.Module):
    """Stem, one identity basic block, one strided projection basic block, pool, linear."""

    def __init__(self, widths: tuple[int, int] = (16, 32), num_classes: int = 10,
                 in_chans: int = 1):
        super().__init__()
        narrow, wide = widths
        self.stem = conv_bn_relu(in_chans, narrow)
        self.layer1 = BasicBlock(narrow, narrow)
        projection = nn.Sequential(nn.Conv2d(narrow, wide, kernel_size=1, stride=2, bias=False),
                                   nn.BatchNorm2d(wide))
        self.layer2 = BasicBlock(narrow, wide, stride=2, downsample=projection)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(wide, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer2(self.layer1(self.stem(x)))
        return self.fc(self.flatten(self.avgpool(x)))


@register_model(name="digits_resnet_tiny", taps=DIGITS_RESNET_TAPS,
                bn_before_relu=DIGITS_RESNET_BN_BEFORE_RELU)
def digits_resnet_tiny(num_classes: int = 10, in_chans: int = 1) -> DigitsResNetTiny:
    """Cross-family student for digits (~20k parameters)."""
    return DigitsResNetTiny(num_classes=num_classes, in_chans=in_chans)
