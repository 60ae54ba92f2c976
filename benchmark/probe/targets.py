"""The probe's target data sets: what the linear classifier is trained and scored on.

``stl10`` (5k train, scored on the 8k test split) and ``tinyimagenet`` (100k train, scored on the
labelled val folder, which :mod:`benchmark.data` serves as ``test``) come from the data package,
resized to the *source* network's input size (the cached ``_32`` variants for CIFAR students);
the held-out digits variants (:mod:`.digits_variants`) stand in for them on CPU. Images stay
uint8 here: the probe normalises them with the source data set's mean/std, not the target's.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from benchmark.data import ArrayData, DatasetInfo, dataset_info, load_splits
from benchmark.data.resize import resize_data
from benchmark.errors import user_error
from benchmark.probe.digits_variants import VARIANTS, load_digits_variant


@dataclass(frozen=True)
class TargetSpec:
    """Where a target's images come from, which split is scored, the probe's default batch."""

    dataset: str | None  # a data set of benchmark.data; None for a digits variant
    scored_split: str
    batch_size: int


TARGETS = {
    "stl10": TargetSpec("stl10", "test (8k)", 256),
    "tinyimagenet": TargetSpec("tinyimagenet", "val (10k; the data package's test split)", 256),
    **{name: TargetSpec(None, "probe-test half", 32) for name in VARIANTS},
}


@dataclass(frozen=True)
class TargetData:
    """A target's probe-train and scored splits (uint8, at the source's input size)."""

    name: str
    train: ArrayData
    test: ArrayData
    num_classes: int
    scored_split: str


def list_targets() -> list[str]:
    return sorted(TARGETS)


def check_target(name: str) -> str:
    """``name`` if it is a known target, else a UserError listing them."""
    if name in TARGETS:
        return name
    close = difflib.get_close_matches(name, list(TARGETS), n=3, cutoff=0.5)
    hint = f"Did you mean {', '.join(close)}? " if close else ""
    raise user_error(f"Unknown probe data set '{name}'", "--dataset",
                     f"{hint}Choose from {', '.join(list_targets())}")


def load_target(name: str, data_dir: str | Path | None, source: DatasetInfo, *,
                download: bool = False) -> TargetData:
    """Target ``name`` at ``source``'s image size, checked against its channel count."""
    spec = TARGETS[check_target(name)]
    if spec.dataset is None:
        train, test = load_digits_variant(name)
        num_classes = 10
    else:
        train, test, num_classes = _load_resized(spec.dataset, data_dir, source.image_size,
                                                 download)
    _check_compatible(name, train, source)
    return TargetData(name, train, test, num_classes, spec.scored_split)


def _load_resized(dataset: str, data_dir, size: int, download: bool
                  ) -> tuple[ArrayData, ArrayData, int]:
    """The data set at ``size`` x ``size``: its cached ``_32`` variant for 32, else resized."""
    native = dataset_info(dataset)
    name = f"{dataset}_32" if size == 32 else dataset
    splits = load_splits(name, data_dir, val_fraction=0, download=download)
    train, test = splits.train, splits.test
    if train.images.shape[-1] != size:
        train, test = resize_data(train, size), resize_data(test, size)
    return train, test, native.num_classes


def _check_compatible(name: str, train: ArrayData, source: DatasetInfo) -> None:
    channels = int(train.images.shape[1])
    if channels != source.in_chans:
        raise user_error(
            f"Probe data set '{name}' has {channels}-channel images but networks trained on "
            f"'{source.name}' take {source.in_chans}", "--dataset",
            "Probe digits networks on a digits variant "
            f"({', '.join(sorted(VARIANTS))}) and RGB networks on stl10 or tinyimagenet")
