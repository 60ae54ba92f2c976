"""Factor transfer (Kim et al., NeurIPS 2018), as in the CRD benchmark code
(HobbitLong/RepDistiller ``distiller_zoo/FT.py`` ``FactorTransfer``, ``models/util.py``
``Paraphraser`` and ``Translator``); the authors' code is Jangho-Kim/Factor-Transfer-pytorch.

Both read the last stage map (``last``, the published feat[-2]).

- Paraphraser (teacher side, rate k = 0.5, no BN): encoder conv3x3 (C -> C), conv3x3 (C -> kC),
  conv3x3 (kC -> kC), each with LeakyReLU(0.1); decoder three transposed conv3x3 back to C.
  Pre-trained for ``pretrain_epochs`` (30) to reconstruct the teacher map
  (:meth:`FTLoss.pretrain_loss`, MSE; benchmark/stages.py runs the stage, with lr 0.01 when the
  student is a CIFAR ResNet or WRN and the run's lr otherwise, as published), then frozen
  (eval mode, no gradients).
- Translator (student side, k = 0.5, with BN): conv3x3 (s_C -> s_C), conv3x3 (s_C -> k t_C),
  conv3x3 (k t_C -> k t_C), each BN + LeakyReLU(0.1); trained jointly with the student.

L = :func:`losses.functional.ft` (the CRD benchmark's factor: normalise(mean_c f^2), L1 mean;
the authors' code normalises the flattened C x H x W factor instead), weight 200 (the CRD
script; the paper says 500), CE 1.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from losses import functional
from losses.registry import LAST, DistillLoss, register_loss

RATE = 0.5
PRETRAIN_EPOCHS = 30
PRETRAIN_LR = 0.01
#: Students for which the published stage uses lr 0.01 (RepDistiller ``helper/pretrain.py``).
LOW_LR_STUDENTS = ("resnet8", "resnet14", "resnet20", "resnet32", "resnet44", "resnet56",
                   "resnet110", "resnet8x4", "resnet32x4", "wrn_16_1", "wrn_16_2", "wrn_40_1",
                   "wrn_40_2")


def _conv_stack(channels: list[int], use_bn: bool, transposed: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    conv = nn.ConvTranspose2d if transposed else nn.Conv2d
    for c_in, c_out in zip(channels[:-1], channels[1:]):
        layers.append(conv(c_in, c_out, 3, 1, 1))
        if use_bn:
            layers.append(nn.BatchNorm2d(c_out))
        layers.append(nn.LeakyReLU(0.1))
    return nn.Sequential(*layers)


class Paraphraser(nn.Module):
    """Teacher-side auto-encoder: ``encoder`` gives the factor, ``decoder`` reconstructs."""

    def __init__(self, channels: int, rate: float = RATE):
        super().__init__()
        factor_channels = int(channels * rate)
        self.encoder = _conv_stack([channels, channels, factor_channels, factor_channels], False)
        self.decoder = _conv_stack([factor_channels, factor_channels, channels, channels], False,
                                   transposed=True)


def translator(student_channels: int, teacher_channels: int, rate: float = RATE) -> nn.Sequential:
    """Student-side encoder to the paraphraser's factor width, with BN."""
    factor_channels = int(teacher_channels * rate)
    return _conv_stack([student_channels, student_channels, factor_channels, factor_channels],
                       True)


@register_loss("ft")
class FTLoss(DistillLoss):
    """L1 between the translator's and the frozen paraphraser's factors; weight 200."""

    default_weight = 200.0
    options = {"pretrain_epochs": PRETRAIN_EPOCHS}

    def __init__(self, student_taps, teacher_taps, context=None, **config):
        super().__init__(student_taps, teacher_taps, context, **config)
        s_channels = self.use_student_tap(LAST)[0]
        t_channels = self.use_teacher_tap(LAST)[0]
        self.paraphraser = Paraphraser(t_channels).requires_grad_(False)
        self.translator = translator(s_channels, t_channels)

    def pretrain_parameters(self, student):
        return list(self.paraphraser.parameters())

    def pretrain_lr(self, lr: float, student_name: str) -> float:
        return PRETRAIN_LR if student_name in LOW_LR_STUDENTS else lr

    def begin_pretrain(self, student) -> None:
        """The published stage: student in eval mode, the paraphraser trained."""
        student.eval()
        self.paraphraser.requires_grad_(True).train()

    def end_pretrain(self) -> None:
        self.paraphraser.requires_grad_(False).eval()

    def pretrain_loss(self, student_feats, teacher_feats, labels=None, indices=None):
        """The paraphraser's stage objective: MSE(decoder(encoder(f_t)), f_t)."""
        f_t = teacher_feats[LAST]
        return F.mse_loss(self.paraphraser.decoder(self.paraphraser.encoder(f_t)), f_t)

    def train(self, mode: bool = True) -> FTLoss:
        """The paraphraser stays in eval mode outside its stage (it has no BN, so this only
        matters for subclasses)."""
        super().train(mode)
        self.paraphraser.eval()
        return self

    def forward(self, student_feats, teacher_feats, labels=None, indices=None):
        return functional.ft(self.translator(student_feats[LAST]),
                             self.paraphraser.encoder(teacher_feats[LAST]))
