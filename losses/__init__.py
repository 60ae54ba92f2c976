"""kdbench's distillation losses: pure functions, the registry, and one module per loss.

Importing the package registers the built-in losses (ce, kd, sp, at, fitnet, rkd, crd, pkt,
cc, vid, nst, and the modern baselines dkd, dist, reviewkd, nkd, wttm, srrl, ofd, simkd, ab, ft,
fsp, kdsvd, and the teacher-free control label_smoothing). Third-party losses register through :mod:`losses.plugins`.
See docs/losses.md for the table of losses, taps, default weights and hyperparameters.
"""

from losses import functional
from losses.registry import (
    DistillLoss,
    HParam,
    LossContext,
    create_loss,
    is_loss,
    list_losses,
    loss_class,
    register_loss,
)

# Built-in losses register themselves on import.
from losses import at, cc, ce, crd, fitnet, kd, nst, pkt, rkd, sp, vid  # noqa: E402,F401  isort: skip
from losses import label_smoothing  # noqa: E402,F401  isort: skip
from losses import (ab, dist, dkd, fsp, ft, kdsvd, nkd, ofd, reviewkd, simkd,  # noqa: E402,F401
                    srrl, wttm)  # isort: skip
from losses.composite import WeightedLoss, create_weighted_loss, expand_loss_label  # noqa: E402

__all__ = [
    "DistillLoss", "HParam", "LossContext", "WeightedLoss", "create_loss",
    "create_weighted_loss", "expand_loss_label", "functional", "is_loss", "list_losses",
    "loss_class", "register_loss",
]
