"""Benchmark: each loss's forward+backward time as a fraction of one training step.

The step is what every distillation run pays anyway: the teacher forward under
``torch.inference_mode`` (features copied out, as the engine does) plus the student forward
and backward with cross-entropy, for one batch (default resnet32x4 -> resnet8x4, batch 64).
A loss's cost is its own forward and backward: it runs on the step's features (student features
as leaves that require grad, so the student's own backward is not counted twice) and its
trainable parts. CRD runs at CIFAR-100 scale: N = 50,000 training samples, K = 16,384.

Measurements are interleaved (one step, then every loss, repeated) and summarised by the
median, so load from other processes hits the step and the losses alike. On an oversubscribed
machine ``--threads 1`` gives steadier ratios: multi-threaded elementwise kernels stall on
descheduled threads far more than large convolutions do. Targets: every loss but CRD under 5%
of a step, CRD under 25%.

Run ``python -m benchmark.perf_losses`` or ``kdbench perf losses``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

CIFAR_TRAIN_SIZE, CIFAR_CLASSES, CRD_NEGATIVES = 50_000, 100, 16_384
TARGET_FRACTION, CRD_TARGET_FRACTION = 0.05, 0.25


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], object], device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


class StepBench:
    """Teacher, student and one batch; times the plain training step."""

    def __init__(self, teacher: str, student: str, batch_size: int, device: torch.device):
        import models

        self.device = device
        torch.manual_seed(0)
        self.teacher = models.create_model(teacher, num_classes=CIFAR_CLASSES).to(device).eval()
        self.teacher.requires_grad_(False)
        self.student = models.create_model(student, num_classes=CIFAR_CLASSES).to(device).train()
        self.teacher_shapes = {k: v.shape for k, v in models.tap_info(self.teacher).items()}
        self.student_shapes = {k: v.shape for k, v in models.tap_info(self.student).items()}
        self.teacher_extractor = models.FeatureExtractor(self.teacher, self.teacher_shapes)
        self.student_extractor = models.FeatureExtractor(self.student, self.student_shapes)
        self.images = torch.randn(batch_size, 3, 32, 32, device=device)
        self.labels = torch.randint(0, CIFAR_CLASSES, (batch_size,), device=device)
        self.indices = torch.randperm(CIFAR_TRAIN_SIZE, device=device)[:batch_size]

    def teacher_features(self) -> dict[str, torch.Tensor]:
        with torch.inference_mode():
            feats = self.teacher_extractor(self.images)
        return {name: tensor.clone() for name, tensor in feats.items()}

    def step(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """One plain step; returns (student features detached, teacher features)."""
        teacher_feats = self.teacher_features()
        student_feats = self.student_extractor(self.images)
        F.cross_entropy(student_feats["logits"], self.labels).backward()
        self.student.zero_grad(set_to_none=True)
        return {name: t.detach() for name, t in student_feats.items()}, teacher_feats

    def leaf_features(self, student_feats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {name: tensor.clone().requires_grad_() for name, tensor in student_feats.items()}


def build_losses(bench: StepBench, names: list[str]) -> dict[str, torch.nn.Module]:
    """Every named loss for the bench's pair; CRD with CIFAR-100's N and K; losses that read
    the teacher model (OFD, SRRL, SimKD) get the bench's teacher."""
    from losses import LossContext, create_loss

    labels = (torch.arange(CIFAR_TRAIN_SIZE) % CIFAR_CLASSES)[torch.randperm(CIFAR_TRAIN_SIZE)]
    context = LossContext(CIFAR_TRAIN_SIZE, CIFAR_CLASSES, labels, teacher=bench.teacher)
    built = {}
    for name in names:
        settings = {"K": CRD_NEGATIVES} if name == "crd" else {}
        built[name] = create_loss(name, bench.student_shapes, bench.teacher_shapes, context,
                                  **settings).to(bench.device)
    return built


def _loss_pass(loss, feats, teacher_feats, bench: StepBench) -> Callable[[], None]:
    def run() -> None:
        value = loss(feats, teacher_feats, labels=bench.labels, indices=bench.indices)
        value.backward()
        loss.zero_grad(set_to_none=True)
    return run


def measure_loss_overhead(teacher: str = "resnet32x4", student: str = "resnet8x4",
                          batch_size: int = 64, device: str = "cpu", rounds: int = 5,
                          losses: list[str] | None = None) -> pd.DataFrame:
    """Median forward+backward time of each loss and its fraction of one training step."""
    from losses import list_losses

    torch_device = torch.device(device)
    bench = StepBench(teacher, student, batch_size, torch_device)
    names = list(losses or list_losses())
    built = build_losses(bench, names)
    student_feats, teacher_feats = bench.step()
    for name in names:  # warm-up; CRD estimates Z here
        _loss_pass(built[name], bench.leaf_features(student_feats), teacher_feats, bench)()
    step_times, loss_times = [], {name: [] for name in names}
    for _ in range(rounds):
        step_times.append(_timed(bench.step, torch_device))
        for name in names:
            feats = bench.leaf_features(student_feats)
            run = _loss_pass(built[name], feats, teacher_feats, bench)
            loss_times[name].append(_timed(run, torch_device))
    step = statistics.median(step_times)
    rows = []
    for name in names:
        target = CRD_TARGET_FRACTION if name == "crd" else TARGET_FRACTION
        loss_time = statistics.median(loss_times[name])
        rows.append({"loss": name, "loss_ms": 1000 * loss_time, "step_ms": 1000 * step,
                     "fraction": loss_time / step, "target": target,
                     "meets_target": loss_time / step < target})
    return pd.DataFrame(rows)


def measure_negative_sampling(batch_size: int = 64, num_samples: int = CIFAR_TRAIN_SIZE,
                              num_negatives: int = CRD_NEGATIVES,
                              num_classes: int = CIFAR_CLASSES, rounds: int = 5,
                              device: str = "cpu") -> pd.DataFrame:
    """Ours (vectorised, one call per batch) vs the published style (numpy, one call per
    sample, drawing from the anchor's precomputed other-class pool), median ms per batch."""
    from losses.negative_sampling import ClassAwareNegativeSampler

    torch_device = torch.device(device)
    labels = (torch.arange(num_samples) % num_classes)[torch.randperm(num_samples)]
    sampler = ClassAwareNegativeSampler(labels, num_classes).to(torch_device)
    anchors = torch.randperm(num_samples, device=torch_device)[:batch_size]
    generator = torch.Generator(device=torch_device).manual_seed(0)
    labels_np = labels.numpy()
    pools = [np.flatnonzero(labels_np != c) for c in range(num_classes)]
    anchor_classes = labels_np[anchors.cpu().numpy()]
    rng = np.random.RandomState(0)

    def published() -> None:
        for c in anchor_classes:
            rng.choice(pools[c], num_negatives, replace=False)

    def ours() -> None:
        sampler.sample(anchors, num_negatives, generator)

    ours()
    results = {"ours (vectorised torch)": [], "published style (numpy per sample)": []}
    for _ in range(rounds):
        results["ours (vectorised torch)"].append(_timed(ours, torch_device))
        results["published style (numpy per sample)"].append(_timed(published, torch_device))
    return pd.DataFrame([{"sampler": name, "ms_per_batch": 1000 * statistics.median(times),
                          "ms_per_sample": 1000 * statistics.median(times) / batch_size}
                         for name, times in results.items()])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default="resnet32x4")
    parser.add_argument("--student", default="resnet8x4")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"device {args.device}, torch threads {torch.get_num_threads()}, "
          f"{args.teacher} -> {args.student}, batch {args.batch_size}, "
          f"CRD N={CIFAR_TRAIN_SIZE}, K={CRD_NEGATIVES}")
    table = measure_loss_overhead(args.teacher, args.student, args.batch_size, args.device,
                                  rounds=args.rounds)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print()
    print(measure_negative_sampling(args.batch_size, device=args.device, rounds=args.rounds)
          .to_string(index=False, float_format=lambda v: f"{v:.2f}"))


if __name__ == "__main__":  # pragma: no cover
    main()
