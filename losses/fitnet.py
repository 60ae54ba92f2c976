"""FitNet hints (Romero et al., ICLR 2015), PROTOCOL §3 FitNet.

Reads the second stage output (``stage2``, the published feature index 2) on both sides. A
regressor, trained jointly from the first step (no hint pre-training), maps the student map to
the teacher map's shape; L = mean squared error.
"""

from __future__ import annotations

from torch import nn

from benchmark.errors import user_error
from losses import functional
from losses.registry import DistillLoss, register_loss


def hint_regressor(student_shape: tuple[int, ...], teacher_shape: tuple[int, ...]) -> nn.Sequential:
    """conv 3x3 stride 2 when the student map is twice the teacher's size, transposed conv 4x4
    stride 2 when half, else conv with kernel (1 + s_H - t_H, 1 + s_W - t_W); then BN and ReLU."""
    s_c, s_h, s_w = student_shape
    t_c, t_h, t_w = teacher_shape
    if s_h == 2 * t_h:
        conv = nn.Conv2d(s_c, t_c, kernel_size=3, stride=2, padding=1)
    elif 2 * s_h == t_h:
        conv = nn.ConvTranspose2d(s_c, t_c, kernel_size=4, stride=2, padding=1)
    elif s_h >= t_h and s_w >= t_w:
        conv = nn.Conv2d(s_c, t_c, kernel_size=(1 + s_h - t_h, 1 + s_w - t_w))
    else:
        raise user_error(
            f"FitNet cannot map a student map of {s_h}x{s_w} to a teacher map of {t_h}x{t_w} "
            "(the regressor handles 2x larger, 2x smaller, or larger-or-equal student maps)",
            "fitnet layer", "Choose another tap with the fitnet option layer=...",
        )
    return nn.Sequential(conv, nn.BatchNorm2d(t_c), nn.ReLU())


@register_loss("fitnet")
class FitNetLoss(DistillLoss):
    """``mean((regressor(f_s) - f_t)^2)`` at ``stage2``; the regressor is trained; beta 100."""

    default_weight = 100.0
    options = {"layer": "stage2"}

    def __init__(self, student_taps, teacher_taps, context=None, **config):
        super().__init__(student_taps, teacher_taps, context, **config)
        self.tap = str(self.config["layer"])
        student_shape = self.use_student_tap(self.tap)
        teacher_shape = self.use_teacher_tap(self.tap)
        if len(student_shape) != 3 or len(teacher_shape) != 3:
            raise user_error(
                f"FitNet needs spatial maps, but tap '{self.tap}' has shapes {student_shape} "
                f"(student) and {teacher_shape} (teacher)", "fitnet layer",
                "Choose a stage tap (stem, stage1..K, last)")
        self.regressor = hint_regressor(student_shape, teacher_shape)

    def forward(self, student_feats, teacher_feats, labels=None, indices=None):
        return functional.hint(self.regressor(student_feats[self.tap]), teacher_feats[self.tap])
