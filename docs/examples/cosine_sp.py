"""Example loss plugin: cosine-similarity SP, a one-file loss for kdbench.

Load it with ``kdbench run --plugin docs/examples/cosine_sp.py`` (or
``losses.plugins.load_plugin("docs/examples/cosine_sp.py")``), or ship it in a package that
declares an entry point in the ``kdbench.losses`` group::

    [project.entry-points."kdbench.losses"]
    cosine_sp = "my_package.cosine_sp"

The loss: like SP it compares b x b similarity matrices of the last-stage maps, but the matrix
is the cosine similarity of the flattened feature vectors (features normalised first, then
multiplied), instead of SP's Gram matrix with L2-normalised rows:

    C = normalise_rows(Q) normalise_rows(Q)^T,  Q = reshape(f, b x (C*H*W)),
    L = ||C_t - C_s||_F^2 / b^2.

Entries of C are O(1) whatever the batch size, so L is the mean squared cosine difference and
does not shrink with b the way SP does. Default weight 5: at initialisation (batch 64 of random
images, last-stage maps of resnet32x4 -> resnet8x4, wrn_40_2 -> wrn_16_2, vgg13 -> vgg8,
resnet56 -> resnet20) this loss is 500-1000x SP, so 5 pulls about as hard as SP's 3000. It is a
starting point for a weight search, not a tuned value.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from losses import DistillLoss, HParam, register_loss

LAST = "last"


def cosine_similarity_matrix(f: torch.Tensor) -> torch.Tensor:
    """b x b cosine similarities of the flattened samples of ``f``."""
    unit = F.normalize(f.reshape(f.shape[0], -1), p=2, dim=1)
    return unit @ unit.t()


def cosine_sp(f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
    """``||C_t - C_s||_F^2 / b^2`` with C the cosine-similarity matrices."""
    b = f_s.shape[0]
    return (cosine_similarity_matrix(f_t) - cosine_similarity_matrix(f_s)).pow(2).sum() / (b * b)


@register_loss("cosine_sp")
class CosineSPLoss(DistillLoss):
    """Cosine-similarity SP on the ``last`` stage maps (or ``layer=`` another tap)."""

    default_weight = 5.0
    weight_range = (0.5, 100.0)
    hparams = {"sharpness": HParam(1.0, 0.25, 4.0, log=True)}
    options = {"layer": LAST}

    def __init__(self, student_taps, teacher_taps, context=None, **config):
        super().__init__(student_taps, teacher_taps, context, **config)
        self.tap = str(self.config["layer"])
        self.sharpness = float(self.config["sharpness"])
        self.use_student_tap(self.tap)
        self.use_teacher_tap(self.tap)

    def forward(self, student_feats, teacher_feats, labels=None, indices=None):
        """``sharpness`` raises both matrices' entries to a signed power before comparing;
        1 (default) is the plain loss above."""
        if self.sharpness == 1.0:
            return cosine_sp(student_feats[self.tap], teacher_feats[self.tap])
        c_s = _signed_power(cosine_similarity_matrix(student_feats[self.tap]), self.sharpness)
        c_t = _signed_power(cosine_similarity_matrix(teacher_feats[self.tap]), self.sharpness)
        return (c_t - c_s).pow(2).mean()


def _signed_power(x: torch.Tensor, exponent: float) -> torch.Tensor:
    return x.sign() * x.abs().clamp_min(1e-12).pow(exponent)
