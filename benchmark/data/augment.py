"""Batched train-time augmentation on the device: random crop with zero padding + horizontal flip.

Equivalent, image by image, to torchvision's ``RandomCrop(size, padding=p)`` followed by
``RandomHorizontalFlip()``: pad with zeros, take the ``size`` x ``size`` window whose top-left
corner is ``(top, left)`` in the padded image (each in ``0..2p``), then mirror it when flipped.
The whole batch is done with one pad and one gather: a table maps every (top, left, flip) to the
flat source index of each output pixel in the padded image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Augment:
    """Train augmentation: random crop with ``crop_padding`` zero pixels, optional h-flip."""

    crop_padding: int = 4
    flip: bool = True

    def __post_init__(self) -> None:
        if self.crop_padding < 0:
            raise ValueError(f"crop_padding must be >= 0, got {self.crop_padding}")

    @property
    def is_identity(self) -> bool:
        return self.crop_padding == 0 and not self.flip


class AugmentDraw(NamedTuple):
    """Random choices for n images: crop corners ``offsets`` int64 [n, 2] (top, left) in the
    padded image, and ``flips`` bool [n]."""

    offsets: torch.Tensor
    flips: torch.Tensor


def draw_augmentation(count: int, augment: Augment, generator: torch.Generator) -> AugmentDraw:
    """Crop corners (uniform in 0..2p) and flip decisions (p = 0.5) for ``count`` images."""
    span = 2 * augment.crop_padding + 1
    offsets = torch.randint(0, span, (count, 2), generator=generator, dtype=torch.int64)
    if augment.flip:
        flips = torch.rand(count, generator=generator) < 0.5
    else:
        flips = torch.zeros(count, dtype=torch.bool)
    return AugmentDraw(offsets, flips)


class CropFlip:
    """Applies given crop corners and flips to uint8 [B, C, H, W] batches of one image size."""

    def __init__(self, height: int, width: int, padding: int,
                 device: torch.device | str = "cpu") -> None:
        self.height, self.width, self.padding = height, width, padding
        self.span = 2 * padding + 1
        self.table = _source_index_table(height, width, padding).to(device)

    def __call__(self, images: torch.Tensor, offsets: torch.Tensor,
                 flips: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = images.shape
        if (height, width) != (self.height, self.width):
            raise ValueError(f"images are {height}x{width}, expected {self.height}x{self.width}")
        p = self.padding
        padded = F.pad(images, (p, p, p, p)) if p else images
        key = (offsets[:, 0] * self.span + offsets[:, 1]) * 2 + flips.to(torch.int64)
        index = self.table.index_select(0, key).unsqueeze(1).expand(batch, channels, -1)
        flat = padded.reshape(batch, channels, -1)
        return flat.gather(2, index).view(batch, channels, height, width)


def _source_index_table(height: int, width: int, padding: int) -> torch.Tensor:
    """int64 [span*span*2, H*W]: row ``(top*span + left)*2 + flip`` holds, for each output
    pixel, its flat index in the padded image."""
    span = 2 * padding + 1
    padded_width = width + 2 * padding
    top = torch.arange(span).view(span, 1, 1, 1, 1)
    left = torch.arange(span).view(1, span, 1, 1, 1)
    flip = torch.tensor([False, True]).view(1, 1, 2, 1, 1)
    row = torch.arange(height).view(1, 1, 1, height, 1)
    col = torch.arange(width).view(1, 1, 1, 1, width)
    source_col = torch.where(flip, left + (width - 1 - col), left + col)
    return ((top + row) * padded_width + source_col).reshape(span * span * 2, height * width)


def crop_flip(images: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor,
              padding: int) -> torch.Tensor:
    """Crop (zero padding ``padding``, corners ``offsets``) and flip a uint8 batch, as the
    loader does; for checks against torchvision with explicit offsets and flips."""
    _, _, height, width = images.shape
    return CropFlip(height, width, padding, images.device)(images, offsets, flips)
