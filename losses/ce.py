"""Cross-entropy on the student's logits, registered as a loss so a run's objective is a list
of weighted terms (PROTOCOL §1: ce 1 for method runs, 0.1 in the KD baseline)."""

from __future__ import annotations

import torch.nn.functional as F

from losses.registry import LOGITS, DistillLoss, register_loss


@register_loss("ce")
class CrossEntropyLoss(DistillLoss):
    """``mean_i -log softmax(z_s)[i, y_i]``; reads the student's ``logits`` and the labels."""

    default_weight = 1.0
    needs_labels = True

    def __init__(self, student_taps, teacher_taps, context=None, **config):
        super().__init__(student_taps, teacher_taps, context, **config)
        self.use_student_tap(LOGITS)

    def forward(self, student_feats, teacher_feats, labels=None, indices=None):
        return F.cross_entropy(student_feats[LOGITS], self.require(labels, "labels"))
