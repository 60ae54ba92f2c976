"""ShuffleNet v2 for CIFAR (net size 1, ``ShuffleV2``) as in the CRD benchmark code.

1x1 stem conv to 24 channels, three stages ``layer1..3`` (a stride-2 ``DownBlock`` then 3/7/3
split-shuffle ``BasicBlock``s; 116/232/464 channels), a 1x1 conv/BN/ReLU head to 1024
channels (``conv2``, ``bn2``), global average pool, ``linear``. Module names, shapes and
PyTorch-default initialisation follow the published code; every module returns a plain tensor
(the channel split is a function, not a module) and the stem and head ReLUs are the
parameter-free modules ``relu`` and ``head_relu``.
Taps: ``stem`` = ``relu``, ``stage1..3`` = ``layer1..3``, so ``last`` (464x4x4) is the stage
output before the 1x1 conv/BN/ReLU head; the embedding is the 1024-d pooled head output.
``preact_stage1..3`` = the published ``preact`` of each stage's last block: the concatenation
of the kept half and the transformed half *before* its ReLU, unshuffled (that block passes it
through the parameter-free ``preact`` module). No BN-before-ReLU is declared (not an OFD
teacher, as published).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.cifar.channel_shuffle import ShuffleBlock
from models.cifar.global_pool import GlobalAvgPool2d
from models.registry import register_model
from models.taps import preact_taps, standard_taps

SHUFFLEV2_BLOCKS = (3, 7, 3)
SHUFFLEV2_TAPS = {
    **standard_taps("relu", ["layer1", "layer2", "layer3"], "linear:input"),
    # layerK.0 is the DownBlock, so the last BasicBlock of stage K is layerK.<blocks>.
    **preact_taps(f"layer{i}.{n}.preact" for i, n in enumerate(SHUFFLEV2_BLOCKS, start=1)),
}
STEM_WIDTH = 24


def split_channels(x: torch.Tensor, ratio: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Split channels into the first ``ratio`` fraction and the rest (the published
    ``SplitBlock``, as a function so that every module returns a plain tensor)."""
    c = int(x.size(1) * ratio)
    return x[:, :c, :, :], x[:, c:, :, :]


class BasicBlock(nn.Module):
    """Keep half the channels, transform the other half (1x1, dw 3x3, 1x1), concat, shuffle."""

    def __init__(self, in_channels: int, split_ratio: float = 0.5, is_last: bool = False):
        super().__init__()
        self.split_ratio = split_ratio
        self.is_last = is_last
        # Parameter-free: the last block of a stage passes its pre-ReLU map through it, so it
        # can be tapped (the published ``preact``); the result is not used by the forward.
        self.preact = nn.Identity()
        channels = int(in_channels * split_ratio)
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, stride=1, padding=1,
                               groups=channels, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = nn.Conv2d(channels, channels, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels)
        self.shuffle = ShuffleBlock()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kept, transformed = split_channels(x, self.split_ratio)
        out = F.relu(self.bn1(self.conv1(transformed)))
        out = self.bn2(self.conv2(out))
        preact = self.bn3(self.conv3(out))
        if self.is_last:
            self.preact(torch.cat([kept, preact], 1))
        return self.shuffle(torch.cat([kept, F.relu(preact)], 1))


class DownBlock(nn.Module):
    """Stride-2 block: two branches (dw-pw and pw-dw-pw), each to half the output width."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        mid_channels = out_channels // 2
        self.conv1 = nn.Conv2d(in_channels, in_channels, kernel_size=3, stride=2, padding=1,
                               groups=in_channels, bias=False)
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv2 = nn.Conv2d(in_channels, mid_channels, kernel_size=1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid_channels)
        self.conv3 = nn.Conv2d(in_channels, mid_channels, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(mid_channels)
        self.conv4 = nn.Conv2d(mid_channels, mid_channels, kernel_size=3, stride=2, padding=1,
                               groups=mid_channels, bias=False)
        self.bn4 = nn.BatchNorm2d(mid_channels)
        self.conv5 = nn.Conv2d(mid_channels, mid_channels, kernel_size=1, bias=False)
        self.bn5 = nn.BatchNorm2d(mid_channels)
        self.shuffle = ShuffleBlock()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left = self.bn1(self.conv1(x))
        left = F.relu(self.bn2(self.conv2(left)))
        right = F.relu(self.bn3(self.conv3(x)))
        right = self.bn4(self.conv4(right))
        right = F.relu(self.bn5(self.conv5(right)))
        return self.shuffle(torch.cat([left, right], 1))


class CifarShuffleNetV2(nn.Module):
    """ShuffleNet v2 for 32x32 inputs: 1x1 stem, ``layer1..3``, 1x1 head, pool, ``linear``."""

    def __init__(self, out_channels=(116, 232, 464, 1024), num_blocks=(3, 7, 3),
                 num_classes: int = 100, in_chans: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_chans, STEM_WIDTH, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(STEM_WIDTH)
        self.relu = nn.ReLU()
        self.in_channels = STEM_WIDTH
        self.layer1 = self._make_layer(out_channels[0], num_blocks[0])
        self.layer2 = self._make_layer(out_channels[1], num_blocks[1])
        self.layer3 = self._make_layer(out_channels[2], num_blocks[2])
        self.conv2 = nn.Conv2d(out_channels[2], out_channels[3], kernel_size=1, stride=1,
                               padding=0, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels[3])
        self.head_relu = nn.ReLU()
        self.avgpool = GlobalAvgPool2d()
        self.flatten = nn.Flatten(1)
        self.linear = nn.Linear(out_channels[3], num_classes)

    def _make_layer(self, out_channels: int, num_blocks: int) -> nn.Sequential:
        layers: list[nn.Module] = [DownBlock(self.in_channels, out_channels)]
        layers += [BasicBlock(out_channels, is_last=index == num_blocks - 1)
                   for index in range(num_blocks)]
        self.in_channels = out_channels
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = self.head_relu(self.bn2(self.conv2(out)))
        return self.linear(self.flatten(self.avgpool(out)))


@register_model(name="shufflev2", aliases=("ShuffleV2",), taps=SHUFFLEV2_TAPS)
def shufflev2(num_classes: int = 100, in_chans: int = 3) -> CifarShuffleNetV2:
    """The CRD benchmark's ShuffleNet v2 (net size 1; 1.36M parameters for 100 classes)."""
    return CifarShuffleNetV2(num_classes=num_classes, in_chans=in_chans)
