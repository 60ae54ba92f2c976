"""CIFAR ResNets (resnet8 ... resnet110, resnet8x4, resnet32x4) as in the CRD benchmark code.

Same layer shapes, module names (state-dict keys) and initialisation as the published
``models/resnet.py``: 3x3 stem conv-BN-ReLU, three stages of basic blocks with (depth-2)/6 blocks
each, 1x1 conv + BN projection where the shape changes, global average pool, ``fc``.
Differences that do not touch the state dict: every block returns a plain tensor (the published
last block returns ``(out, preact)``), and pooling is global-average (identical at 32x32 input).
Taps: ``stem`` = stem ReLU, ``stage1..3`` = ``layer1..3`` outputs after the block ReLU;
``preact_stage1..3`` = the last block's sum before that ReLU (the published ``preact``), whose
BatchNorm before the ReLU is that block's ``bn2`` (published ``get_bn_before_relu``).
"""

from __future__ import annotations

import torch
from torch import nn

from models.cifar.global_pool import GlobalAvgPool2d
from models.registry import register_model
from models.taps import preact_taps, standard_taps

RESNET_TAPS = standard_taps("relu", ["layer1", "layer2", "layer3"], "fc:input")


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution, padding 1, no bias."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity or projection shortcut, ReLU after the sum."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.out_relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        residual = x if self.downsample is None else self.downsample(x)
        return self.out_relu(out + residual)


class CifarResNet(nn.Module):
    """Stem, three stages of :class:`BasicBlock`, global average pool, linear classifier."""

    def __init__(self, depth: int, widths: tuple[int, int, int, int], num_classes: int = 100,
                 in_chans: int = 3):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
        blocks_per_stage = (depth - 2) // 6
        self.inplanes = widths[0]
        self.conv1 = nn.Conv2d(in_chans, widths[0], kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU()
        self.layer1 = self._make_layer(widths[1], blocks_per_stage, stride=1)
        self.layer2 = self._make_layer(widths[2], blocks_per_stage, stride=2)
        self.layer3 = self._make_layer(widths[3], blocks_per_stage, stride=2)
        self.avgpool = GlobalAvgPool2d()
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(widths[3] * BasicBlock.expansion, num_classes)
        self._initialize_weights()

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * BasicBlock.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * BasicBlock.expansion, kernel_size=1,
                          stride=stride, bias=False),
                nn.BatchNorm2d(planes * BasicBlock.expansion),
            )
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * BasicBlock.expansion
        layers += [BasicBlock(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def _initialize_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(module.weight, 1)
                nn.init.constant_(module.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.flatten(self.avgpool(x)))


BASE_WIDTHS = (16, 16, 32, 64)
X4_WIDTHS = (32, 64, 128, 256)


def _register_resnet(name: str, depth: int, widths: tuple[int, int, int, int]) -> None:
    def build(num_classes: int = 100, in_chans: int = 3) -> CifarResNet:
        return CifarResNet(depth, widths, num_classes=num_classes, in_chans=in_chans)

    build.__name__ = build.__qualname__ = name
    last = (depth - 2) // 6 - 1
    preact = [f"layer{stage}.{last}" for stage in (1, 2, 3)]
    taps = {**RESNET_TAPS, **preact_taps(f"{path}.out_relu:input" for path in preact)}
    register_model(build, name=name, taps=taps,
                   bn_before_relu={tap: f"{path}.bn2" for tap, path in
                                   zip(preact_taps(preact), preact)})


for _depth in (8, 14, 20, 32, 44, 56, 110):
    _register_resnet(f"resnet{_depth}", _depth, BASE_WIDTHS)
_register_resnet("resnet8x4", 8, X4_WIDTHS)
_register_resnet("resnet32x4", 32, X4_WIDTHS)
