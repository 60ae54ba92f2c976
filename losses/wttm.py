"""Weighted transformed teacher matching (Zheng & Yang, ICLR 2024), official code:
zkxufo/TTM ``distiller_zoo/wttm.py``.

L = mean_i U_i KL(softmax(gamma z_t) || softmax(z_s)), U_i = sum_c p_t^gamma
(:func:`losses.functional.wttm`), with CE 1 (``-r 1``). gamma (``--ttm_l``) and the weight beta
(``-b``) are per pair and come only from the paper (arXiv 2402.11148, App. A.4); the defaults
are its resnet32x4 -> resnet8x4 values, gamma 0.1 and beta 3. No trainable parts.
"""

from __future__ import annotations

from losses import functional
from losses.registry import LOGITS, DistillLoss, HParam, register_loss


@register_loss("wttm")
class WTTMLoss(DistillLoss):
    """Power-transformed teacher, weighted by its power sum; weight 3 (beta)."""

    default_weight = 3.0
    hparams = {"gamma": HParam(0.1, 0.05, 1.0, log=True)}
    logit_host = True

    def forward(self, student_feats, teacher_feats, labels=None, indices=None):
        return functional.wttm(student_feats[LOGITS], teacher_feats[LOGITS],
                               self.config["gamma"])
