"""CIFAR VGGs with batch norm (vgg8, vgg11, vgg13, vgg16, vgg19) as in the CRD benchmark code.

Five conv blocks ``block0..block4`` (Sequentials of conv3x3-BN-ReLU with the block's final ReLU
stripped, exactly the published state-dict layout), max-pools ``pool0..pool3`` between them
(``pool3`` only for 64x64 inputs, as published), global average pool, ``classifier`` (512 ->
classes). The published code applies each block's final ReLU functionally; here they are the
parameter-free modules ``relu0..relu4`` so the stage outputs (after the ReLU) can be hooked.
Taps: ``stem`` = ``relu0``, ``stage1..4`` = ``relu1..relu4`` (512x4x4 at 32x32 input);
``preact_stage1..4`` = ``block1..4`` outputs (their last BN, before the ReLU), as published.
"""

from __future__ import annotations


import torch
from torch import nn

from models.cifar.init import published_init

from models.registry import register_model
from models.taps import preact_taps, standard_taps

VGG_TAPS = {**standard_taps("relu0", ["relu1", "relu2", "relu3", "relu4"], "classifier:input"),
            **preact_taps(["block1", "block2", "block3", "block4"])}

VGG_CONFIGS = {
    "vgg8": [[64], [128], [256], [512], [512]],
    "vgg11": [[64], [128], [256, 256], [512, 512], [512, 512]],
    "vgg13": [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]],
    "vgg16": [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]],
    "vgg19": [[64, 64], [128, 128], [256, 256, 256, 256], [512, 512, 512, 512],
              [512, 512, 512, 512]],
}


def make_block(widths: list[int], in_channels: int) -> nn.Sequential:
    """conv3x3-BN-ReLU per width, without the final ReLU (published layout)."""
    layers: list[nn.Module] = []
    for width in widths:
        layers += [nn.Conv2d(in_channels, width, kernel_size=3, padding=1),
                   nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        in_channels = width
    return nn.Sequential(*layers[:-1])


class CifarVGG(nn.Module):
    """VGG with BN for 32x32 inputs: five conv blocks, global average pool, linear classifier."""

    def __init__(self, config: list[list[int]], num_classes: int = 100, in_chans: int = 3):
        super().__init__()
        in_widths = [in_chans] + [widths[-1] for widths in config[:-1]]
        for index, (widths, in_width) in enumerate(zip(config, in_widths)):
            self.add_module(f"block{index}", make_block(widths, in_width))
        for index in range(4):
            self.add_module(f"pool{index}", nn.MaxPool2d(kernel_size=2, stride=2))
        self.pool4 = nn.AdaptiveAvgPool2d((1, 1))
        for index in range(5):
            self.add_module(f"relu{index}", nn.ReLU())
        self.flatten = nn.Flatten(1)
        self.classifier = nn.Linear(config[-1][-1], num_classes)
        published_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        input_height = x.shape[2]
        x = self.pool0(self.relu0(self.block0(x)))
        x = self.pool1(self.relu1(self.block1(x)))
        x = self.pool2(self.relu2(self.block2(x)))
        x = self.relu3(self.block3(x))
        if input_height == 64:
            x = self.pool3(x)
        x = self.relu4(self.block4(x))
        return self.classifier(self.flatten(self.pool4(x)))


def _register_vgg(name: str, config: list[list[int]]) -> None:
    def build(num_classes: int = 100, in_chans: int = 3) -> CifarVGG:
        return CifarVGG(config, num_classes=num_classes, in_chans=in_chans)

    build.__name__ = build.__qualname__ = name
    last = {index: 3 * len(config[index]) - 2 for index in range(1, 5)}  # the block's last BN
    register_model(build, name=name, taps=VGG_TAPS,
                   bn_before_relu={f"preact_stage{i}": f"block{i}.{last[i]}" for i in last})


for _name, _config in VGG_CONFIGS.items():
    _register_vgg(_name, _config)
