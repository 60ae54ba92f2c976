"""Label smoothing (Szegedy et al., CVPR 2016) as a loss: the teacher-free control.

Label smoothing trains on targets ``(1 - eps) * onehot(y) + eps / K``; KD's gain is often
compared with it, since a teacher's soft targets also regularise the student's confidence.
The registered term is the smoothing part alone, the cross-entropy against the uniform
distribution, ``H(u, p) = -mean_k log softmax(z)_k``, so a row keeps its ``ce`` term and the
weight is what is tuned: ``ce: 1, label_smoothing: w`` equals ``(1 + w)`` times label-smoothed
cross-entropy with ``eps = w / (1 + w)`` (PyTorch's ``cross_entropy(label_smoothing=eps)``).
The default weight 1/9 is ``eps = 0.1``, the paper's value. It reads no teacher tap.
"""

from __future__ import annotations

from torch import Tensor

from losses.registry import LOGITS, DistillLoss, register_loss

DEFAULT_EPS = 0.1


def uniform_cross_entropy(logits: Tensor) -> Tensor:
    """``-mean_k log softmax(logits)_k``, averaged over the batch."""
    return -logits.log_softmax(dim=1).mean(dim=1).mean()


def weight_for_eps(eps: float) -> float:
    """The ``label_smoothing`` weight beside ``ce: 1`` that smooths by ``eps``."""
    return eps / (1.0 - eps)


@register_loss("label_smoothing")
class LabelSmoothingLoss(DistillLoss):
    """Cross-entropy of the student's logits against the uniform distribution."""

    default_weight = weight_for_eps(DEFAULT_EPS)

    def __init__(self, student_taps, teacher_taps, context=None, **config):
        super().__init__(student_taps, teacher_taps, context, **config)
        self.use_student_tap(LOGITS)

    def forward(self, student_feats, teacher_feats, labels=None, indices=None):
        return uniform_cross_entropy(student_feats[LOGITS])
