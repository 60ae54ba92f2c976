"""Knowledge distillation via softmax regression representation learning (Yang et al., ICLR
2021), official code: jingyang2017/KD_SRRL (ImageNet; ``distiller_zoo/AIN.py``: ``statm_loss``,
``transfer_conv``) and, for CIFAR-100, the same author's jingyang2017/SRD_ossl
(``helper/loops.py``, ``--distill srd``).

The student's last stage map (``last``, the published feat[-2]) goes through a connector,
conv1x1 (s -> t channels, no bias) + BN + ReLU, He-normal initialised and trained. Then

    L = feature_weight * spatial_mean_gap(connected, teacher last map)
        + MSE(teacher classifier(global pool(connected)), teacher logits)

(:func:`losses.functional.srrl`). The teacher's classifier is copied frozen into buffers at
construction (it needs ``context.teacher``); gradients reach the student and the connector.
Defaults: weight 1 (``-b 1``), feature_weight 1 (SRD_ossl uses 10 for a ShuffleV1 student).
The student keeps and trains its own classifier, which is the one evaluated.
"""

from __future__ import annotations

from losses import functional
from losses.parts import FrozenTeacherClassifier, conv1x1_bn, global_pool
from losses.registry import LAST, LOGITS, DistillLoss, HParam, register_loss


@register_loss("srrl")
class SRRLLoss(DistillLoss):
    """Feature-mean matching plus softmax regression through the teacher's classifier; 1."""

    default_weight = 1.0
    hparams = {"feature_weight": HParam(1.0, 0.1, 100.0, log=True)}
    needs_context = True
    needs_teacher = True

    def __init__(self, student_taps, teacher_taps, context=None, **config):
        super().__init__(student_taps, teacher_taps, context, **config)
        s_channels = self.use_student_tap(LAST)[0]
        t_channels = self.use_teacher_tap(LAST)[0]
        self.use_teacher_tap(LOGITS)
        self.connector = conv1x1_bn(s_channels, t_channels, relu=True)
        self.teacher_classifier = FrozenTeacherClassifier(context.teacher, self.name)

    def forward(self, student_feats, teacher_feats, labels=None, indices=None):
        connected = self.connector(student_feats[LAST])
        regressed = self.teacher_classifier(global_pool(connected))
        return functional.srrl(connected, teacher_feats[LAST], regressed, teacher_feats[LOGITS],
                               self.config["feature_weight"])
