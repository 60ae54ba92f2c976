"""uint8 images -> normalised float32 on the device, exactly like ToTensor + Normalize.

``(x / 255 - mean) / std`` per channel, done as one multiply-add on the whole batch with the
constants folded (``x * 1/(255 std) - mean/std``).
"""

from __future__ import annotations

from typing import Sequence

import torch


class Normalizer:
    """Converts uint8 [B, C, H, W] batches to normalised float32 on ``device``."""

    def __init__(self, mean: Sequence[float], std: Sequence[float],
                 device: torch.device | str = "cpu") -> None:
        if len(mean) != len(std):
            raise ValueError(f"mean has {len(mean)} channels, std has {len(std)}")
        mean_t = torch.tensor(list(mean), dtype=torch.float64).view(1, -1, 1, 1)
        std_t = torch.tensor(list(std), dtype=torch.float64).view(1, -1, 1, 1)
        self.scale = (1.0 / (255.0 * std_t)).to(device=device, dtype=torch.float32)
        self.shift = (-mean_t / std_t).to(device=device, dtype=torch.float32)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[1] != self.scale.shape[1]:
            raise ValueError(f"images have {images.shape[1]} channels, the normalisation "
                             f"has {self.scale.shape[1]}")
        return images.to(torch.float32).mul_(self.scale).add_(self.shift)
