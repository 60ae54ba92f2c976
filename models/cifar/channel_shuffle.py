"""Channel shuffle, the parameter-free permutation shared by ShuffleNet v1 and v2."""

from __future__ import annotations

import torch
from torch import nn


class ShuffleBlock(nn.Module):
    """Channel shuffle: [N, C, H, W] -> [N, g, C/g, H, W] -> transpose groups -> [N, C, H, W]."""

    def __init__(self, groups: int = 2):
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.size()
        g = self.groups
        return x.view(n, g, c // g, h, w).permute(0, 2, 1, 3, 4).reshape(n, c, h, w)
