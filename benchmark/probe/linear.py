"""The linear probe: a linear classifier trained on frozen embeddings, then scored.

Deterministic by construction: the classifier starts at zero, the features are standardised with
the probe-train mean/std (a fixed affine map, so the hypothesis class is still every linear
classifier of the raw embedding), and the only randomness is the mini-batch order, drawn from a
CPU generator seeded with ``settings.seed``. Same seed, same inputs -> the same classifier
weights and accuracy, bit for bit on CPU. Optimiser and schedule: see :mod:`.settings`.

The classifier is tiny (a [batch, D] x [D, classes] product per step), so on the CPU it trains
on one intra-op thread: splitting such ops over threads costs more in fork/join than it saves,
and on a busy machine a descheduled worker thread stalls every step (measured on the 2-core CI
box under load: 179 digits embeddings, 30 epochs, 0.2 s on one thread vs 1.1 to 14 s on two).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from benchmark.probe.settings import ProbeSettings

STD_FLOOR = 1e-6  # dimensions that never vary (dead units) keep a unit scale


@dataclass
class LinearProbe:
    """A trained probe: the standardisation and the classifier on top of it."""

    shift: torch.Tensor
    scale: torch.Tensor
    classifier: nn.Linear
    final_loss: float

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        device = self.classifier.weight.device
        inputs = (features.to(device) - self.shift) / self.scale
        return self.classifier(inputs)

    @torch.no_grad()
    def accuracy(self, features: torch.Tensor, labels: torch.Tensor) -> float:
        """Top-1 accuracy in percent."""
        if len(labels) == 0:
            return math.nan
        with single_cpu_thread(self.classifier.weight.device):
            predicted = self.logits(features).argmax(dim=1).cpu()
        return float((predicted == labels.cpu()).double().mean() * 100.0)


def standardization(features: torch.Tensor, enabled: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(shift, scale) per dimension from the probe-train features; (0, 1) when disabled."""
    dim = features.shape[1]
    if not enabled:
        return torch.zeros(dim), torch.ones(dim)
    shift = features.mean(dim=0)
    std = features.std(dim=0, unbiased=False)
    scale = torch.where(std < STD_FLOOR, torch.ones_like(std), std)
    return shift, scale


def cosine_lr(base_lr: float, step: int, total_steps: int) -> float:
    """Cosine annealing from ``base_lr`` at step 0 to 0 at ``total_steps``."""
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))


@contextlib.contextmanager
def single_cpu_thread(device: torch.device | str):
    """One intra-op thread for the duration on the CPU (restored afterwards)."""
    if torch.device(device).type != "cpu":
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def train_linear_probe(features: torch.Tensor, labels: torch.Tensor, num_classes: int,
                       settings: ProbeSettings, device: torch.device | str = "cpu"
                       ) -> LinearProbe:
    """Train a zero-initialised ``nn.Linear`` on ``features`` [N, D] with the stated schedule."""
    _check_inputs(features, labels, num_classes)
    if settings.batch_size is None:
        raise ValueError("settings.batch_size is unset: resolve it with settings.for_target()")
    with single_cpu_thread(device):
        return _train(features, labels, num_classes, settings, device)


def _train(features: torch.Tensor, labels: torch.Tensor, num_classes: int,
           settings: ProbeSettings, device: torch.device | str) -> LinearProbe:
    shift, scale = standardization(features.float(), settings.standardize)
    inputs = ((features.float() - shift) / scale).to(device)
    targets = labels.to(device)
    classifier = nn.Linear(features.shape[1], num_classes).to(device)
    with torch.no_grad():
        classifier.weight.zero_()
        classifier.bias.zero_()
    optimizer = torch.optim.SGD(classifier.parameters(), lr=settings.lr,
                                momentum=settings.momentum, weight_decay=settings.weight_decay)
    generator = torch.Generator().manual_seed(settings.seed)
    steps_per_epoch = math.ceil(len(labels) / settings.batch_size)
    total_steps, step, loss = settings.epochs * steps_per_epoch, 0, torch.tensor(math.nan)
    for _ in range(settings.epochs):
        order = torch.randperm(len(labels), generator=generator).to(device)
        for start in range(0, len(labels), settings.batch_size):
            batch = order[start:start + settings.batch_size]
            for group in optimizer.param_groups:
                group["lr"] = cosine_lr(settings.lr, step, total_steps)
            loss = F.cross_entropy(classifier(inputs[batch]), targets[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
    return LinearProbe(shift.to(device), scale.to(device), classifier.requires_grad_(False),
                       float(loss.detach()))


def _check_inputs(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> None:
    if features.dim() != 2 or len(features) != len(labels) or len(labels) == 0:
        raise ValueError(f"need features [N, D] and N labels with N > 0, got "
                         f"{tuple(features.shape)} and {tuple(labels.shape)}")
    if int(labels.min()) < 0 or int(labels.max()) >= num_classes:
        raise ValueError(f"labels must lie in 0..{num_classes - 1}, got "
                         f"{int(labels.min())}..{int(labels.max())}")
