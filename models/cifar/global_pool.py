"""Global average pooling that matches the CRD code's fixed-kernel ``avg_pool2d`` bit for bit.

The published ResNet, WRN and ShuffleNet code pools with a fixed kernel (8 or 4) that equals the
last map's size at 32x32 input. Pooling with kernel = the map's own size gives bit-identical
results there (adaptive pooling sums in a different order and differs by ~1e-7) and still
works for other input sizes, where the fixed kernel would break the classifier's input size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GlobalAvgPool2d(nn.Module):
    """Average over the whole H x W map: ``avg_pool2d`` with kernel = (H, W); keeps dims."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, kernel_size=tuple(x.shape[-2:]))
