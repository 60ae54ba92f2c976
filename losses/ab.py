"""Activation-boundary distillation (Heo et al., AAAI 2019), as in the CRD benchmark code
(HobbitLong/RepDistiller ``distiller_zoo/AB.py``, ``ABLoss``) and the authors'
bhheo/AB_distillation (``criterion_alternative_L2``, same weights and scale).

Reads the pre-ReLU stage maps of both nets (``preact_stageK``, the published ``preact=True``
feat[1:-1]), paired from the first stage and truncated to the shorter side. Per pair a
connector maps the student map to the teacher's shape: identity when channels and height
match, else the FitNet regressor without its ReLU (conv + BN). L = :func:`losses.functional.ab`
(margin 1, stage i of K weighted 2^(i-K+1), sum / batch, x 3/1000).

The published protocol, which kdbench runs (benchmark/stages.py): a pre-training stage of
``pretrain_epochs`` (30, the published ``init_epochs``) in which the connectors and the
student's feature layers (everything but its classifier) train on this loss alone, unweighted,
with a fresh SGD at the run's learning rate, momentum and weight decay; then the main training
is CE only (``stage_only``: the term and its connectors take no part, as the published
``loss_kd = 0`` with the connector in eval mode).
"""

from __future__ import annotations

from torch import nn

from losses import functional
from losses.fitnet import hint_regressor
from losses.parts import feature_parameters
from losses.registry import PREACT_STAGE, DistillLoss, register_loss

PRETRAIN_EPOCHS = 30


def ab_connector(student_shape: tuple[int, ...], teacher_shape: tuple[int, ...]) -> nn.Module:
    """Identity when channels and height match, else conv (as FitNet's regressor) + BN."""
    if student_shape[0] == teacher_shape[0] and student_shape[1] == teacher_shape[1]:
        return nn.Identity()
    return hint_regressor(student_shape, teacher_shape)[:2]


@register_loss("ab")
class ABLoss(DistillLoss):
    """Hinge-like L2 on activation boundaries of pre-ReLU maps; weight 1."""

    default_weight = 1.0
    options = {"margin": 1.0, "pretrain_epochs": PRETRAIN_EPOCHS}
    stage_only = True

    def __init__(self, student_taps, teacher_taps, context=None, **config):
        super().__init__(student_taps, teacher_taps, context, **config)
        self.pairs = self.paired_stage_taps(PREACT_STAGE)
        self.connectors = nn.ModuleList(
            ab_connector(self.student_taps[s], self.teacher_taps[t]) for s, t in self.pairs)

    def pretrain_parameters(self, student):
        """The connectors and the student's feature layers (published ``init_trainable_list``)."""
        return self.trainable_parameters() + feature_parameters(student)

    def forward(self, student_feats, teacher_feats, labels=None, indices=None):
        connected = [connector(student_feats[s])
                     for connector, (s, _) in zip(self.connectors, self.pairs)]
        return functional.ab(connected, [teacher_feats[t] for _, t in self.pairs],
                             float(self.config["margin"]))
