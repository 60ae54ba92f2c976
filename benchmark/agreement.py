"""Teacher-student agreement on the test set: how far a student imitates its teacher.

Two numbers per run, logged with the last epoch's metrics (names in
:class:`benchmark.records.Metric`):

- ``test_agreement``: the percentage of test images on which the student's and the teacher's
  top-1 predictions agree;
- ``test_kl``: the mean over test images of KL(p_teacher || p_student), in nats, with the plain
  softmax (temperature 1), computed in float32 from the logits.

The teacher's test logits are computed once per cohort (:class:`TeacherLogits`) and compared
with each student's, image by image in the loader's fixed (unshuffled) order.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.records import Metric


def predict(model: nn.Module, loader, device: torch.device, amp: Optional[str] = None,
            channels_last: bool = False) -> torch.Tensor:
    """All logits of ``model`` over ``loader`` (eval mode, float32, model mode restored)."""
    from benchmark.engine import autocast_for

    was_training = model.training
    model.eval()
    out = []
    with torch.inference_mode(), autocast_for(device, amp):
        for batch in loader:
            images = batch.images
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            out.append(model(images).float())
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0)


def agreement_metrics(student_logits: torch.Tensor,
                      teacher_logits: torch.Tensor) -> dict[str, float]:
    """Top-1 agreement (%) and mean KL(teacher || student) of two logit tensors [N, classes]."""
    if student_logits.shape != teacher_logits.shape or not len(student_logits):
        raise ValueError(f"logits of shape {tuple(student_logits.shape)} and "
                         f"{tuple(teacher_logits.shape)} cannot be compared")
    agree = (student_logits.argmax(1) == teacher_logits.argmax(1)).float().mean()
    kl = F.kl_div(F.log_softmax(student_logits, 1), F.log_softmax(teacher_logits, 1),
                  reduction="batchmean", log_target=True)
    return {Metric.TEST_AGREEMENT: 100.0 * float(agree), Metric.TEST_KL: float(kl)}


class TeacherLogits:
    """The teacher's test logits, computed on first use and kept for the cohort."""

    def __init__(self, teacher: nn.Module, device: torch.device, amp: Optional[str] = None,
                 channels_last: bool = False):
        self.teacher, self.device = teacher, device
        self.amp, self.channels_last = amp, channels_last
        self._logits: Optional[torch.Tensor] = None

    def metrics(self, student: nn.Module, loader) -> dict[str, float]:
        """Agreement and KL of ``student`` with the teacher over ``loader``."""
        if self._logits is None:
            self._logits = predict(self.teacher, loader, self.device, self.amp,
                                   self.channels_last)
        return agreement_metrics(predict(student, loader, self.device, self.amp,
                                         self.channels_last), self._logits)
