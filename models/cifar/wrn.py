"""Wide ResNets (wrn_16_1, wrn_16_2, wrn_40_1, wrn_40_2, wrn_16_8) as in the CRD benchmark code.

Pre-activation design with the published module names (``block1.layer.0.bn1`` ...,
``convShortcut`` where the width or stride changes), layer shapes and initialisation.
Stage outputs are the raw residual sums; a final BN-ReLU (``bn1``, ``relu``) precedes pooling.
Taps: ``stem`` = ``conv1`` output, ``stage1..3`` = ``block1..3`` outputs, so ``last`` is the
last stage output *before* the final BN-ReLU (PROTOCOL section 2). Blocks return plain tensors;
pooling is global-average (identical to the published ``avg_pool2d(8)`` at 32x32 input).
``preact_stage1..3`` are the BN outputs that the next ReLU reads (``block2.layer.0.bn1``,
``block3.layer.0.bn1``, ``bn1``: the published ``preact`` features and ``get_bn_before_relu``);
the ReLUs after them are out of place so the tapped tensors stay intact (same numbers).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from models.cifar.global_pool import GlobalAvgPool2d
from models.registry import register_model
from models.taps import preact_taps, standard_taps

_WRN_PREACT = ["block2.layer.0.bn1", "block3.layer.0.bn1", "bn1"]
WRN_TAPS = {**standard_taps("conv1", ["block1", "block2", "block3"], "fc:input"),
            **preact_taps(_WRN_PREACT)}
WRN_BN_BEFORE_RELU = dict(zip(preact_taps(_WRN_PREACT), _WRN_PREACT))


class BasicBlock(nn.Module):
    """Pre-activation block: BN-ReLU-conv3x3-BN-ReLU-conv3x3 plus (projected) shortcut."""

    def __init__(self, in_planes: int, out_planes: int, stride: int, drop_rate: float = 0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = nn.ReLU()  # out of place: bn1's output is the preact tap
        self.conv1 = nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1,
                               bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_planes, out_planes, kernel_size=3, stride=1, padding=1,
                               bias=False)
        self.drop_rate = drop_rate
        self.equal_in_out = in_planes == out_planes
        self.convShortcut = None if self.equal_in_out else nn.Conv2d(
            in_planes, out_planes, kernel_size=1, stride=stride, padding=0, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = self.relu1(self.bn1(x))
        out = self.relu2(self.bn2(self.conv1(activated)))
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        out = self.conv2(out)
        shortcut = x if self.equal_in_out else self.convShortcut(activated)
        return shortcut + out


class NetworkBlock(nn.Module):
    """One stage: ``layer`` is a Sequential of :class:`BasicBlock` (published naming)."""

    def __init__(self, num_layers: int, in_planes: int, out_planes: int, stride: int,
                 drop_rate: float = 0.0):
        super().__init__()
        self.layer = nn.Sequential(*[
            BasicBlock(in_planes if i == 0 else out_planes, out_planes,
                       stride if i == 0 else 1, drop_rate)
            for i in range(num_layers)
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class WideResNet(nn.Module):
    """WRN-depth-width: conv stem, three :class:`NetworkBlock` stages, BN-ReLU, pool, ``fc``."""

    def __init__(self, depth: int, widen_factor: int, num_classes: int = 100, in_chans: int = 3,
                 drop_rate: float = 0.0):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WRN depth must be 6n+4, got {depth}")
        blocks_per_stage = (depth - 4) // 6
        channels = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(in_chans, channels[0], kernel_size=3, stride=1, padding=1,
                               bias=False)
        self.block1 = NetworkBlock(blocks_per_stage, channels[0], channels[1], 1, drop_rate)
        self.block2 = NetworkBlock(blocks_per_stage, channels[1], channels[2], 2, drop_rate)
        self.block3 = NetworkBlock(blocks_per_stage, channels[2], channels[3], 2, drop_rate)
        self.bn1 = nn.BatchNorm2d(channels[3])
        self.relu = nn.ReLU()  # out of place: bn1's output is the preact_stage3 tap
        self.avgpool = GlobalAvgPool2d()
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(channels[3], num_classes)
        self.nChannels = channels[3]
        self._initialize_weights()

    def _initialize_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
                module.weight.data.normal_(0, math.sqrt(2.0 / fan_out))
            elif isinstance(module, nn.BatchNorm2d):
                module.weight.data.fill_(1)
                module.bias.data.zero_()
            elif isinstance(module, nn.Linear):
                module.bias.data.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = self.relu(self.bn1(out))
        return self.fc(self.flatten(self.avgpool(out)))


def _register_wrn(depth: int, widen_factor: int) -> None:
    name = f"wrn_{depth}_{widen_factor}"

    def build(num_classes: int = 100, in_chans: int = 3, drop_rate: float = 0.0) -> WideResNet:
        return WideResNet(depth, widen_factor, num_classes=num_classes, in_chans=in_chans,
                          drop_rate=drop_rate)

    build.__name__ = build.__qualname__ = name
    register_model(build, name=name, taps=WRN_TAPS, bn_before_relu=WRN_BN_BEFORE_RELU)


for _depth, _widen in ((16, 1), (16, 2), (40, 1), (40, 2), (16, 8)):
    _register_wrn(_depth, _widen)
