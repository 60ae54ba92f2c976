"""Resize decoded uint8 image tensors (the transfer probe resizes STL-10 and TinyImageNet to 32).

Antialiased bilinear interpolation on float, rounded back to uint8, in chunks so a 100k-image
split never needs a full float copy in memory.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from benchmark.data.types import ArrayData

_CHUNK = 2048


def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 [N, C, H, W] -> uint8 [N, C, size, size] (antialiased bilinear)."""
    if images.shape[-2:] == (size, size):
        return images
    out = torch.empty((images.shape[0], images.shape[1], size, size), dtype=torch.uint8)
    for start in range(0, images.shape[0], _CHUNK):
        chunk = images[start:start + _CHUNK].float()
        scaled = F.interpolate(chunk, size=(size, size), mode="bilinear", antialias=True,
                               align_corners=False)
        out[start:start + _CHUNK] = scaled.round_().clamp_(0, 255).to(torch.uint8)
    return out


def resize_data(data: ArrayData, size: int) -> ArrayData:
    """The same split with every image resized to ``size`` x ``size``."""
    return ArrayData(resize_images(data.images, size), data.labels)
