"""The weight initialisation of the published CIFAR MobileNetV2 and VGG (RepDistiller):
He-normal convs by fan-out, BN weight 1 / bias 0, Linear N(0, 0.01) with zero bias."""

from __future__ import annotations

import math

from torch import nn


def published_init(model: nn.Module) -> None:
    """Initialise every Conv2d, BatchNorm2d and Linear of ``model`` in place, in module order."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
            module.weight.data.normal_(0, math.sqrt(2.0 / fan_out))
            if module.bias is not None:
                module.bias.data.zero_()
        elif isinstance(module, nn.BatchNorm2d):
            module.weight.data.fill_(1)
            module.bias.data.zero_()
        elif isinstance(module, nn.Linear):
            module.weight.data.normal_(0, 0.01)
            module.bias.data.zero_()
