"""ResNet-50, CIFAR variant (``ResNet50`` in the CRD benchmark code's ``models/resnetv2.py``).

3x3 stride-1 stem (no max-pool), four stages of bottleneck blocks [3, 4, 6, 3] with widths
64/128/256/512 (x4 expansion), 1x1 conv + BN projection ``shortcut``, global average pool,
``linear``. Module names, shapes and initialisation follow the published code; blocks return
plain tensors, and the stem ReLU is the parameter-free module ``relu`` so it can be hooked.
Taps: ``stem`` = ``relu``, ``stage1..4`` = ``layer1..4`` after the block ReLU (2048x4x4 last);
``preact_stage1..4`` = each stage's last residual sum before its ReLU (``out_relu``, a
parameter-free module), with BatchNorm ``bn3`` of that block before the ReLU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.registry import register_model
from models.taps import preact_taps, standard_taps

RESNET50_BLOCKS = (3, 4, 6, 3)
_RESNET50_LAST = [f"layer{i}.{n - 1}" for i, n in enumerate(RESNET50_BLOCKS, start=1)]
RESNET50_TAPS = {
    **standard_taps("relu", ["layer1", "layer2", "layer3", "layer4"], "linear:input"),
    **preact_taps(f"{path}.out_relu:input" for path in _RESNET50_LAST),
}
RESNET50_BN_BEFORE_RELU = {tap: f"{path}.bn3" for tap, path in
                           zip(preact_taps(_RESNET50_LAST), _RESNET50_LAST)}


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand (x4), each with BN; ReLU after the residual sum."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        out_planes = self.expansion * planes
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1,
                               bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != out_planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_planes),
            )
        self.out_relu = nn.ReLU()  # a module (no parameters) so the pre-ReLU sum can be tapped

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.out_relu(out + self.shortcut(x))


class CifarResNet50(nn.Module):
    """Bottleneck ResNet for 32x32 inputs: stem, ``layer1..4``, pool, ``linear``."""

    def __init__(self, num_blocks=(3, 4, 6, 3), num_classes: int = 100, in_chans: int = 3,
                 zero_init_residual: bool = False):
        super().__init__()
        self.in_planes = 64
        self.conv1 = nn.Conv2d(in_chans, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.layer1 = self._make_layer(64, num_blocks[0], stride=1)
        self.layer2 = self._make_layer(128, num_blocks[1], stride=2)
        self.layer3 = self._make_layer(256, num_blocks[2], stride=2)
        self.layer4 = self._make_layer(512, num_blocks[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.flatten = nn.Flatten(1)
        self.linear = nn.Linear(512 * Bottleneck.expansion, num_classes)
        self._initialize_weights(zero_init_residual)

    def _make_layer(self, planes: int, num_blocks: int, stride: int) -> nn.Sequential:
        layers = []
        for block_stride in [stride] + [1] * (num_blocks - 1):
            layers.append(Bottleneck(self.in_planes, planes, block_stride))
            self.in_planes = planes * Bottleneck.expansion
        return nn.Sequential(*layers)

    def _initialize_weights(self, zero_init_residual: bool) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(module.weight, 1)
                nn.init.constant_(module.bias, 0)
        if zero_init_residual:
            for module in self.modules():
                if isinstance(module, Bottleneck):
                    nn.init.constant_(module.bn3.weight, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.linear(self.flatten(self.avgpool(x)))


@register_model(name="resnet50", aliases=("ResNet50",), taps=RESNET50_TAPS,
                bn_before_relu=RESNET50_BN_BEFORE_RELU)
def resnet50(num_classes: int = 100, in_chans: int = 3,
             zero_init_residual: bool = False) -> CifarResNet50:
    """The CRD benchmark's CIFAR ResNet-50 (23.7M parameters for 100 classes)."""
    return CifarResNet50(num_classes=num_classes, in_chans=in_chans,
                         zero_init_residual=zero_init_residual)
