"""The linear probe's settings: the stated, seeded, deterministic optimiser and schedule.

PROTOCOL §4 names no probe optimiser, so kdbench states and records its own (docs/probe.md):
the frozen embeddings are standardised per dimension with the probe-train statistics, a zero-
initialised ``nn.Linear`` is trained with cross-entropy by SGD (momentum 0.9, no weight decay),
mini-batches of 256 drawn by a seeded permutation each epoch, the learning rate 0.1 annealed per
step to 0 by a cosine over 30 epochs. The batch size defaults per target: 256 for STL-10 and
TinyImageNet, 32 for the 179-image digits halves (256 would make an epoch one full-batch step).
Every field is an MLflow param of the probe run, and
:meth:`ProbeSettings.key` enters the key that decides whether a probe was already done.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace

from benchmark.errors import user_error

OPTIMIZER = "sgd"
SCHEDULE = "cosine-per-step-to-0"
INIT = "zeros"


@dataclass(frozen=True)
class ProbeSettings:
    """How the linear classifier on frozen embeddings is trained."""

    epochs: int = 30
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int | None = None  # None: the target's default (see targets.TARGETS)
    seed: int = 0
    standardize: bool = True

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 1, "--epochs", f"must be at least 1, got {self.epochs}"),
            (self.lr > 0, "--lr", f"must be positive, got {self.lr}"),
            (0 <= self.momentum < 1, "momentum", f"must be in [0, 1), got {self.momentum}"),
            (self.weight_decay >= 0, "--weight-decay", f"must be >= 0, got {self.weight_decay}"),
            (self.batch_size is None or self.batch_size >= 1, "--batch-size",
             f"must be at least 1, got {self.batch_size}"),
            (self.seed >= 0, "--seed", f"must be >= 0, got {self.seed}"),
        ]
        for ok, where, what in checks:
            if not ok:
                raise user_error(f"The probe setting {where} {what}", where,
                                 "Pass a valid value (defaults: --epochs 30 --lr 0.1 "
                                 "--seed 0, no weight decay)")

    def for_target(self, default_batch_size: int) -> "ProbeSettings":
        """These settings with the target's default batch size filled in where none was given."""
        if self.batch_size is not None:
            return self
        return replace(self, batch_size=default_batch_size)

    def params(self) -> dict[str, str]:
        """The settings as MLflow params (``probe.*``), optimiser and schedule spelled out."""
        fields = {**asdict(self), "optimizer": OPTIMIZER, "schedule": SCHEDULE, "init": INIT,
                  "loss": "cross_entropy"}
        return {f"probe.{name}": str(value) for name, value in fields.items()}

    def describe(self) -> str:
        """One line for tables and logs."""
        decay = (f", weight decay {self.weight_decay:g}" if self.weight_decay
                 else ", no weight decay")
        batch = self.batch_size if self.batch_size is not None else "per data set"
        return (f"SGD momentum {self.momentum:g}, lr {self.lr:g} cosine to 0 over "
                f"{self.epochs} epochs, batch {batch}{decay}, seed {self.seed}"
                + (", standardised features" if self.standardize else ""))

    def key(self) -> str:
        """A short hash of every setting (part of a probe run's identity)."""
        text = json.dumps(self.params(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]
