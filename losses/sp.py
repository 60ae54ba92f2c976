"""Similarity-preserving KD (Tung & Mori, ICCV 2019), PROTOCOL §3 SP.

Default: one pair, the ``last`` stage map of both nets (the benchmark's form). Option
``layers="stages"`` sums SP over every stage pair (zip of student and teacher stages, truncated
to the shorter), the paper's general form; a list picks pairs explicitly: tap names used on
both sides (``["stage2", "last"]``) or ``(student_tap, teacher_tap)`` pairs.

Batch-size scaling. Each row of the row-normalised b x b Gram matrices has unit norm, so
||G_t - G_s||_F^2 is a sum of b row differences of size O(1): it grows like b, and dividing by
b^2 makes L shrink about as 1/b. The published beta = 3000 was set for batch 64; to keep the
same pull at batch b use about 3000 * b / 64 (:func:`sp_weight_for_batch`), e.g. 6000 at b=128.
"""

from __future__ import annotations

from typing import Any

from benchmark.errors import user_error
from losses import functional
from losses.registry import LAST, DistillLoss, register_loss, stage_tap_names

PUBLISHED_WEIGHT = 3000.0
PUBLISHED_BATCH_SIZE = 64


def sp_weight_for_batch(batch_size: int, weight: float = PUBLISHED_WEIGHT,
                        reference_batch_size: int = PUBLISHED_BATCH_SIZE) -> float:
    """SP weight that keeps the loss's pull constant at another batch size (L ~ 1/b)."""
    return weight * batch_size / reference_batch_size


@register_loss("sp")
class SPLoss(DistillLoss):
    """Sum over the chosen map pairs of ``||G_t - G_s||_F^2 / b^2`` with row-normalised Grams.

    ``default_weight`` 3000 is the published beta at batch size 64 (see the module docstring
    for the 1/b scaling).
    """

    default_weight = PUBLISHED_WEIGHT
    options = {"layers": LAST}

    def __init__(self, student_taps, teacher_taps, context=None, **config):
        super().__init__(student_taps, teacher_taps, context, **config)
        self.pairs = self._tap_pairs(self.config["layers"])
        for student_tap, teacher_tap in self.pairs:
            self.use_student_tap(student_tap)
            self.use_teacher_tap(teacher_tap)

    def _tap_pairs(self, layers: Any) -> list[tuple[str, str]]:
        if layers == LAST:
            return [(LAST, LAST)]
        if layers == "stages":
            pairs = list(zip(stage_tap_names(self.student_taps),
                             stage_tap_names(self.teacher_taps)))
            return pairs or [("stage1", "stage1")]
        if isinstance(layers, (list, tuple)) and layers and not isinstance(layers, str):
            return [self._as_pair(item) for item in layers]
        raise user_error(
            f"SP option layers={layers!r} is not understood", "sp layers",
            "Use 'last', 'stages', a list of tap names, or a list of (student_tap, teacher_tap)",
        )

    @staticmethod
    def _as_pair(item: Any) -> tuple[str, str]:
        if isinstance(item, str):
            return item, item
        if isinstance(item, (list, tuple)) and len(item) == 2:
            return str(item[0]), str(item[1])
        raise user_error(f"SP layer entry {item!r} is neither a tap name nor a pair",
                         "sp layers", "Write 'stage2' or ['stage2', 'stage3']")

    def forward(self, student_feats, teacher_feats, labels=None, indices=None):
        losses = [functional.sp(student_feats[s], teacher_feats[t]) for s, t in self.pairs]
        return sum(losses[1:], losses[0])
