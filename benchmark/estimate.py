"""Wall-time estimates for ``kdbench run --dry-run --estimate``, from a short measured warm-up on
this device.

For each distinct cohort shape of a plan (data set, teacher, the members' students and losses,
batch size, speed options) the real engine (:class:`benchmark.engine.Cohort`) is built on
synthetic data of the data set's shape and size and takes ``warmup`` untimed and ``steps`` timed
training steps (teacher forward plus every member's step). An epoch is then
``ceil(train / batch)`` steps plus the evaluation forwards (each member's forward over val and
test, counted as a third of a training step per image: a forward of the three a step costs),
and a cohort ``epochs`` of them. Teacher-training runs are measured the same way (one member, no
teacher). Totals are device-hours: GPU-hours on CUDA, CPU-hours otherwise (wall hours of this
machine with its torch threads).

Cohorts of one shape differ only in seeds, so each shape is measured once; with ``--jobs N``
cohorts run side by side, which this estimate does not divide by.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

#: Training and test split sizes of the built-in data sets, for when their files are absent.
KNOWN_SIZES = {"cifar10": (50_000, 10_000), "cifar100": (50_000, 10_000),
               "stl10": (5_000, 8_000), "tinyimagenet": (100_000, 10_000),
               "imagenet": (1_281_167, 50_000)}


@dataclass
class Estimate:
    """Measured seconds per training step of one cohort shape, and what the plan needs."""

    label: str
    step_s: float
    steps_per_epoch: int
    eval_steps_per_epoch: float  # in training-step units
    epochs: int
    count: int  # cohorts of this shape in the plan

    @property
    def cohort_s(self) -> float:
        return self.epochs * (self.steps_per_epoch + self.eval_steps_per_epoch) * self.step_s

    @property
    def total_s(self) -> float:
        return self.count * self.cohort_s


def split_sizes(spec, data_dir=None) -> tuple[int, int, int]:
    """(train, val, test) sizes of ``spec``'s data: from its files when they load, else the
    known sizes of the built-in data sets."""
    from benchmark.data import load_splits

    try:
        splits = load_splits(spec.dataset, data_dir, val_fraction=spec.val_fraction,
                             split_seed=spec.split_seed, train_fraction=spec.train_fraction)
        return (len(splits.train.labels), len(splits.val.labels) if splits.val else 0,
                len(splits.test.labels))
    except Exception:  # data absent: a dry run must not need it
        if spec.dataset not in KNOWN_SIZES:
            raise
        pool, test = KNOWN_SIZES[spec.dataset]
        val = int(round(pool * spec.val_fraction))
        return int((pool - val) * spec.train_fraction), val, test


def synthetic_data(spec, num_train: int, num_test: int):
    """Random uint8 data of ``spec``'s data set's shape (classes, channels, image size)."""
    from benchmark.data import ArrayData, Splits, dataset_info

    info = dataset_info(spec.dataset)
    g = torch.Generator().manual_seed(0)

    def split(n: int) -> ArrayData:
        images = torch.randint(0, 256, (n, info.in_chans, info.image_size, info.image_size),
                               dtype=torch.uint8, generator=g)
        labels = torch.arange(n) % info.num_classes  # every class present (CRD's sampler)
        return ArrayData(images, labels[torch.randperm(n, generator=g)])

    return Splits(train=split(num_train), val=None, test=split(num_test), info=info)


def measure_step(specs, device: torch.device, num_train: int, steps: int = 2,
                 warmup: int = 1) -> float:
    """Seconds per training step of a cohort of ``specs`` (best timed step after warm-up)."""
    import models
    from benchmark.data import make_loader
    from benchmark.engine import Cohort, RunEnv

    first = specs[0]
    batch = first.recipe.batch_size
    # CRD's banks and negatives need the real N; the images only need one block of batches
    data = synthetic_data(first, num_train, 2)
    teacher = None
    if first.teacher is not None:
        torch.manual_seed(0)
        teacher = models.create_model(first.teacher, num_classes=data.info.num_classes,
                                      in_chans=data.info.in_chans)
    env = RunEnv(device=device, store=Path("/nonexistent-estimate-store"))
    cohort = Cohort(specs, env, data=data, teacher=teacher)
    if cohort.failed:
        raise RuntimeError(f"cannot estimate {first.loss}: {cohort.failed[0].reason}")
    used = min(num_train, (steps + warmup) * batch)
    loader = make_loader(data.train.subset(torch.arange(used)), data.info, batch, train=True,
                         seed=0, device=device)
    batches = list(loader)
    for member in cohort.members:
        member.train_mode()
    best = math.inf
    for i, b in enumerate(batches[:steps + warmup]):
        images = b.images
        if first.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        feats = cohort.teacher_features(images)
        for member in cohort.members:
            member.step(images, b.labels, b.indices, feats)
        for member in cohort.members:  # wait for the step (CPU: already done)
            float(member.term_sums["total"])
        if i >= warmup:
            best = min(best, time.perf_counter() - start)
    failed = [m.failed for m in cohort.members if m.failed]
    if failed:
        raise RuntimeError(failed[0])
    return best


def _shape_key(cohort) -> tuple:
    first = cohort.runs[0]
    exclude = {"seed", "teacher_seed", "suite"}
    shared = first.model_dump(mode="json", exclude=exclude | {"student", "loss", "terms",
                                                               "hparams"})
    members = sorted((r.student, r.loss, r.terms, r.hparams) for r in cohort.runs)
    return (repr(sorted(shared.items())), repr(members))


def estimate_plan(plan, device: torch.device, data_dir: Optional[str] = None, steps: int = 2,
                  log=None) -> tuple[list[Estimate], dict[int, Estimate], list[Estimate]]:
    """Estimates of the plan's teacher trainings and cohorts: (per teacher shape, cohort index ->
    its shape's estimate, per cohort shape)."""
    shapes: dict[tuple, Estimate] = {}
    by_cohort: dict[int, Estimate] = {}
    for index, cohort in enumerate(plan.cohorts):
        key = _shape_key(cohort)
        if key not in shapes:
            shapes[key] = _estimate(cohort.runs, device, data_dir, steps,
                                    f"{cohort.dataset} {cohort.teacher}: {len(cohort.runs)} "
                                    "run(s)")
            if log:
                log(f"measured {shapes[key].label}: {shapes[key].step_s:.3f} s a step")
        else:
            shapes[key].count += 1
        by_cohort[index] = shapes[key]
    teachers: dict[tuple, Estimate] = {}
    for spec in plan.teachers_to_train:
        key = (spec.student, spec.dataset, repr(spec.recipe))
        if key not in teachers:
            teachers[key] = _estimate([spec], device, data_dir, steps,
                                      f"teacher {spec.student} on {spec.dataset}")
        else:
            teachers[key].count += 1
    return list(teachers.values()), by_cohort, list(shapes.values())


def _estimate(specs, device, data_dir, steps, label) -> Estimate:
    first = specs[0]
    train, val, test = split_sizes(first, data_dir)
    step_s = measure_step(specs, device, train, steps=steps)
    batch = first.recipe.batch_size
    eval_images = (val + test) * len(specs)
    return Estimate(label, step_s, math.ceil(train / batch),
                    eval_images / batch / 3 / max(len(specs), 1), first.recipe.epochs, 1)


def device_hours_unit(device: torch.device) -> str:
    return "GPU-hours" if device.type == "cuda" else "CPU-hours"


def describe_estimates(teachers: list[Estimate], cohorts: list[Estimate],
                       device: torch.device) -> str:
    """The estimate's lines for ``--dry-run``: per teacher and cohort shape, and the total."""
    unit = device_hours_unit(device)
    threads = "" if device.type == "cuda" else f", {torch.get_num_threads()} torch threads"
    lines = [f"Estimated wall time on {device}{threads} (measured warm-up steps):"]
    for e in teachers + cohorts:
        lines.append(f"  {e.label}: {e.step_s:.3f} s a step x {e.steps_per_epoch} steps x "
                     f"{e.epochs} epochs = {_hours(e.cohort_s, unit)} each, x{e.count} = "
                     f"{_hours(e.total_s, unit)}")
    total = sum(e.total_s for e in teachers + cohorts)
    lines.append(f"Total: {_hours(total, unit)} ({total / 86400:.2f} days on one device)")
    return "\n".join(lines)


def _hours(seconds: float, unit: str) -> str:
    text = f"{seconds / 3600:.2f} {unit}"
    return text if seconds >= 3600 else f"{text} ({seconds / 60:.1f} min)"
