"""ShuffleNet v1 for CIFAR (groups 3, ``ShuffleV1``) as in the CRD benchmark code.

1x1 stem conv to 24 channels (stride 1), three stages ``layer1..3`` of grouped bottlenecks
(4/8/4 blocks, out planes 240/480/960; the first block of each stage has stride 2 and
concatenates an average-pooled shortcut), global average pool, ``linear``. Module names, shapes
and PyTorch-default initialisation follow the published code; blocks return plain tensors and
the stem ReLU is the parameter-free module ``relu``.
Taps: ``stem`` = ``relu``, ``stage1..3`` = ``layer1..3`` after the block ReLU (960x4x4 last);
``preact_stage1..3`` = the last block's merged map before that ReLU (``out_relu``, a
parameter-free module), the published ``preact``. No BN-before-ReLU is declared (the published
``get_bn_before_relu`` raises for ShuffleNets), so it cannot be an OFD teacher.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.cifar.channel_shuffle import ShuffleBlock
from models.cifar.global_pool import GlobalAvgPool2d
from models.registry import register_model
from models.taps import preact_taps, standard_taps

SHUFFLEV1_BLOCKS = (4, 8, 4)
SHUFFLEV1_TAPS = {
    **standard_taps("relu", ["layer1", "layer2", "layer3"], "linear:input"),
    **preact_taps(f"layer{i}.{n - 1}.out_relu:input"
                  for i, n in enumerate(SHUFFLEV1_BLOCKS, start=1)),
}
STEM_WIDTH = 24


class Bottleneck(nn.Module):
    """Grouped 1x1 - shuffle - depthwise 3x3 - grouped 1x1; add (stride 1) or concat (stride 2)."""

    def __init__(self, in_planes: int, out_planes: int, stride: int, groups: int):
        super().__init__()
        self.stride = stride
        mid_planes = int(out_planes / 4)
        first_groups = 1 if in_planes == STEM_WIDTH else groups
        self.conv1 = nn.Conv2d(in_planes, mid_planes, kernel_size=1, groups=first_groups,
                               bias=False)
        self.bn1 = nn.BatchNorm2d(mid_planes)
        self.shuffle1 = ShuffleBlock(groups=first_groups)
        self.conv2 = nn.Conv2d(mid_planes, mid_planes, kernel_size=3, stride=stride, padding=1,
                               groups=mid_planes, bias=False)
        self.bn2 = nn.BatchNorm2d(mid_planes)
        self.conv3 = nn.Conv2d(mid_planes, out_planes, kernel_size=1, groups=groups, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.shortcut = nn.Sequential()
        if stride == 2:
            self.shortcut = nn.Sequential(nn.AvgPool2d(3, stride=2, padding=1))
        self.out_relu = nn.ReLU()  # a module (no parameters) so the pre-ReLU map can be tapped

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.shuffle1(out)
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        residual = self.shortcut(x)
        merged = torch.cat([out, residual], 1) if self.stride == 2 else out + residual
        return self.out_relu(merged)


class CifarShuffleNetV1(nn.Module):
    """ShuffleNet v1 for 32x32 inputs: 1x1 stem, ``layer1..3``, pool, ``linear``."""

    def __init__(self, out_planes=(240, 480, 960), num_blocks=(4, 8, 4), groups: int = 3,
                 num_classes: int = 100, in_chans: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_chans, STEM_WIDTH, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(STEM_WIDTH)
        self.relu = nn.ReLU()
        self.in_planes = STEM_WIDTH
        self.layer1 = self._make_layer(out_planes[0], num_blocks[0], groups)
        self.layer2 = self._make_layer(out_planes[1], num_blocks[1], groups)
        self.layer3 = self._make_layer(out_planes[2], num_blocks[2], groups)
        self.avgpool = GlobalAvgPool2d()
        self.flatten = nn.Flatten(1)
        self.linear = nn.Linear(out_planes[2], num_classes)

    def _make_layer(self, out_planes: int, num_blocks: int, groups: int) -> nn.Sequential:
        layers = []
        for index in range(num_blocks):
            stride = 2 if index == 0 else 1
            concatenated = self.in_planes if index == 0 else 0
            layers.append(Bottleneck(self.in_planes, out_planes - concatenated, stride, groups))
            self.in_planes = out_planes
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.linear(self.flatten(self.avgpool(out)))


@register_model(name="shufflev1", aliases=("ShuffleV1",), taps=SHUFFLEV1_TAPS)
def shufflev1(num_classes: int = 100, in_chans: int = 3) -> CifarShuffleNetV1:
    """The CRD benchmark's ShuffleNet v1 (groups 3; 0.95M parameters for 100 classes)."""
    return CifarShuffleNetV1(num_classes=num_classes, in_chans=in_chans)
