"""Small building blocks shared by several losses: the published connector initialisation, a
frozen copy of the teacher's classifier, and 1x1 conv + BN connectors.

A loss never holds the teacher as a submodule (its parameters would join the loss's state dict
and optimizer); what it needs of the teacher is copied into buffers at construction.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from benchmark.errors import user_error


def he_normal_(module: nn.Module) -> nn.Module:
    """The published connector init: conv weights ~ N(0, 2 / (k_h k_w out)), BN weight 1,
    bias 0 (OFD, SRRL)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return module


def conv1x1_bn(in_channels: int, out_channels: int, relu: bool = False) -> nn.Sequential:
    """conv1x1 (no bias) + BN (+ ReLU), He-normal initialised."""
    layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, 1, bias=False),
                               nn.BatchNorm2d(out_channels)]
    if relu:
        layers.append(nn.ReLU())
    return he_normal_(nn.Sequential(*layers))


class FrozenTeacherClassifier(nn.Module):
    """A copy of the teacher's linear classifier as buffers: ``forward(pooled) -> logits``.

    The classifier is the module whose input is the teacher's ``embedding`` tap; it must hold
    exactly one ``nn.Linear`` (CIFAR and torchvision classifiers do). Gradients flow to the
    input, never to the copied weights.
    """

    def __init__(self, teacher: nn.Module, loss_name: str):
        super().__init__()
        import models

        head = models.classifier_of(teacher)
        linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
        if len(linears) != 1:
            raise user_error(
                f"Loss '{loss_name}' reuses the teacher's classifier, but the teacher's head "
                f"{type(head).__name__} holds {len(linears)} linear layers", f"loss '{loss_name}'",
                "Use a teacher whose classifier is one linear layer on the pooled embedding")
        linear = linears[0]
        self.register_buffer("weight", linear.weight.detach().clone())
        bias = linear.bias.detach().clone() if linear.bias is not None else None
        self.register_buffer("bias", bias)
        self.in_features = linear.in_features

    def forward(self, pooled: Tensor) -> Tensor:
        return F.linear(pooled, self.weight, self.bias)


def feature_parameters(student: nn.Module) -> list[nn.Parameter]:
    """The student's parameters outside its classifier (the published ``get_feat_modules``:
    every layer up to the pooled embedding)."""
    import models

    head = {id(p) for p in models.classifier_of(student).parameters()}
    return [p for p in student.parameters() if id(p) not in head]


def global_pool(f: Tensor) -> Tensor:
    """Global average pool of a b x C x H x W map to b x C."""
    return f.mean(dim=(2, 3))


def as_map(vector: Tensor) -> Tensor:
    """A pooled b x D vector as a b x D x 1 x 1 map (ReviewKD's deepest level)."""
    return vector.reshape(vector.shape[0], -1, 1, 1)


__all__ = ["FrozenTeacherClassifier", "as_map", "conv1x1_bn", "feature_parameters",
           "global_pool", "he_normal_"]
