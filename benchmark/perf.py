"""Training-throughput benchmark (``kdbench perf train``): the real cohort engine on synthetic
CIFAR-shaped data, measured in one process so the ratios compare like with like.

It times, over the same batches: each loss trained as a separate run (teacher forward + one
student) one after the other, versus all of them as one cohort (one teacher forward feeding every
student); and a single run in plain fp32 NCHW versus channels_last (and bf16 autocast on CUDA).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from benchmark.data import ArrayData, DatasetInfo, Splits
from benchmark.engine import Cohort, RunEnv
from benchmark.plan import RunSpec
from benchmark.recipes import get_recipe

CIFAR_INFO = DatasetInfo(name="synthetic-cifar100", num_classes=100, image_size=32, in_chans=3,
                         mean=(0.5071, 0.4867, 0.4408), std=(0.2675, 0.2565, 0.2761))


@dataclass
class Timing:
    label: str
    images: int
    seconds: float

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds


def synthetic_splits(num_train: int = 50000, num_test: int = 256, seed: int = 0) -> Splits:
    """Random uint8 CIFAR-100-shaped data (CRD's banks get the real N=50,000)."""
    g = torch.Generator().manual_seed(seed)

    def split(n: int) -> ArrayData:
        return ArrayData(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g),
                         torch.randint(0, 100, (n,), generator=g))

    return Splits(train=split(num_train), val=None, test=split(num_test), info=CIFAR_INFO)


def perf_specs(teacher: str, student: str, losses: list[str], batch_size: int,
               channels_last: bool = False, amp: Optional[str] = None) -> list[RunSpec]:
    from losses import loss_class
    from losses.composite import expand_loss_label

    recipe = get_recipe("crd-cifar").scaled_to(batch_size=batch_size)
    specs = []
    for label in losses:
        terms = tuple(sorted((n, float(loss_class(n).default_weight) if w == "default"
                              else float(w)) for n, w in expand_loss_label(label).items()))
        specs.append(RunSpec(suite="perf", role="student", dataset="synthetic", teacher=teacher,
                             student=student, loss=label, terms=terms, seed=0, recipe=recipe,
                             channels_last=channels_last, amp=amp))
    return specs


def _time_cohort(specs: list[RunSpec], data: Splits, teacher_model: torch.nn.Module,
                 device: torch.device, steps: int, warmup: int) -> float:
    from benchmark.data import make_loader

    env = RunEnv(device=device, store=Path("/nonexistent-perf-store"))
    cohort = Cohort(specs, env, data=data, teacher=teacher_model)
    if cohort.failed:
        raise RuntimeError(f"perf run failed to build: {cohort.failed[0].reason}")
    bs = specs[0].recipe.batch_size
    loader = make_loader(data.train.subset(torch.arange((steps + warmup) * bs)), data.info, bs,
                         train=True, seed=0, device=device, augment=None)
    batches = list(loader)
    members = cohort.members
    for m in members:
        m.train_mode()

    def run(batch_list) -> None:
        for batch in batch_list:
            images = batch.images
            if specs[0].channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            feats = cohort.teacher_features(images)
            for m in members:
                m.step(images, batch.labels, batch.indices, feats)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    run(batches[:warmup])
    start = time.perf_counter()
    run(batches[warmup:])
    elapsed = time.perf_counter() - start
    failed = [m.failed for m in members if m.failed]
    if failed:
        raise RuntimeError(failed[0])
    return elapsed


def measure_training(teacher: str = "resnet32x4", student: str = "resnet8x4",
                     losses: tuple[str, ...] = ("sp", "kd", "at", "fitnet", "rkd", "crd"),
                     batch_size: int = 64, steps: int = 4, warmup: int = 2,
                     device: str = "cpu", num_train: int = 50000) -> list[Timing]:
    """Separate runs vs one cohort, and fp32 NCHW vs channels_last (vs bf16 on CUDA)."""
    import models

    dev = torch.device(device)
    data = synthetic_splits(num_train)
    torch.manual_seed(0)
    teacher_model = models.create_model(teacher, num_classes=100).to(dev).eval()
    images = steps * batch_size
    timings = []
    specs = perf_specs(teacher, student, list(losses), batch_size)
    separate = sum(_time_cohort([s], data, teacher_model, dev, steps, warmup) for s in specs)
    timings.append(Timing(f"{len(specs)} separate runs", images * len(specs), separate))
    together = _time_cohort(specs, data, teacher_model, dev, steps, warmup)
    timings.append(Timing(f"one cohort of {len(specs)}", images * len(specs), together))
    # Plain vs channels_last, interleaved and best-of-2 so neither gains from running later.
    formats = {"fp32 NCHW": (torch.contiguous_format, False, None),
               "channels_last": (torch.channels_last, True, None)}
    if dev.type == "cuda":
        formats["channels_last+bf16"] = (torch.channels_last, True, "bf16")
    best: dict[str, float] = {}
    for _ in range(2):
        for name, (memory_format, channels_last, amp) in formats.items():
            specs_1 = perf_specs(teacher, student, [losses[0]], batch_size,
                                 channels_last=channels_last, amp=amp)
            seconds = _time_cohort(specs_1, data, teacher_model.to(memory_format=memory_format),
                                   dev, steps, warmup)
            best[name] = min(best.get(name, float("inf")), seconds)
    for name, seconds in best.items():
        timings.append(Timing(f"single run ({losses[0]}) {name}", images, seconds))
    return timings


def format_training_report(timings: list[Timing]) -> str:
    lines = [f"{'configuration':42s} {'images/s':>10s}"]
    lines += [f"{t.label:42s} {t.images_per_s:10.1f}" for t in timings]
    separate, cohort = timings[0], timings[1]
    lines.append(f"cohort speed-up over separate runs: {cohort.images_per_s / separate.images_per_s:.2f}x"
                 " (target >= 1.9x)")
    lines.append(f"channels_last speed-up over fp32 NCHW: "
                 f"{timings[3].images_per_s / timings[2].images_per_s:.2f}x (target >= 1.2x)")
    if len(timings) > 4:
        lines.append(f"channels_last+bf16 speed-up over fp32 NCHW: "
                     f"{timings[4].images_per_s / timings[2].images_per_s:.2f}x")
    return "\n".join(lines)
