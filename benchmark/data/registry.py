"""The data set registry: names -> how to describe and load each data set.

Each data set module registers a :class:`DatasetSpec`; :func:`load_splits` loads its train pool
and test split and holds a seeded validation split out of the train pool. The test split is
returned untouched: it never depends on ``split_seed`` and is never used for a choice.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from benchmark.data.holdout import stratified_holdout
from benchmark.data.types import DatasetInfo, SplitData, Splits
from benchmark.errors import user_error

# (data_dir or None, download) -> (train pool, test split)
SourceLoader = Callable[[Path | None, bool], tuple[SplitData, SplitData]]

_BUILTIN_MODULES = ("digits", "cifar10", "cifar100", "stl10", "tinyimagenet", "imagenet")
_REGISTRY: dict[str, "DatasetSpec"] = {}
_builtins_loaded = False


@dataclass(frozen=True)
class DatasetSpec:
    """How to describe (``describe()``) and load (``load(data_dir, download)``) one data set."""

    name: str
    describe: Callable[[], DatasetInfo]
    load: SourceLoader


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add ``spec`` to the registry under ``spec.name`` (a second registration replaces it)."""
    _REGISTRY[spec.name] = spec
    return spec


def list_datasets() -> list[str]:
    """Every registered data set name, sorted."""
    _load_builtins()
    return sorted(_REGISTRY)


def dataset_info(name: str) -> DatasetInfo:
    """Classes, image size, channels and normalisation statistics of data set ``name``."""
    return _spec(name).describe()


def load_splits(name: str, data_dir: str | Path | None, *, val_fraction: float = 0.1,
                split_seed: int = 0, download: bool = False,
                train_fraction: float = 1.0) -> Splits:
    """Load data set ``name`` from ``data_dir``: train, seeded val held out of train, and test.

    ``train_fraction`` < 1 keeps a seeded, class-stratified share of the training split (after
    the val split is held out): a student that trains on a small labelled part of what its
    teacher saw. Val and test are unchanged by it."""
    spec = _spec(name)
    if not 0.0 <= float(val_fraction) < 1.0:
        raise user_error(f"val_fraction must be at least 0 and below 1, got {val_fraction}",
                         f"data set '{name}'", "Use e.g. 0.1 (10% of train), or 0 for no val split")
    if not 0.0 < float(train_fraction) <= 1.0:
        raise user_error(f"train_fraction must be above 0 and at most 1, got {train_fraction}",
                         f"data set '{name}'", "Use e.g. 0.1 (10% of train), or 1 for all of it")
    root = Path(data_dir).expanduser() if data_dir is not None else None
    train_pool, test = spec.load(root, bool(download))
    train, val = train_pool, None
    if val_fraction > 0:
        kept, held = stratified_holdout(train_pool.labels, float(val_fraction), split_seed)
        train, val = train_pool.subset(kept), train_pool.subset(held)
    return Splits(labelled_part(train, train_fraction, split_seed), val, test, spec.describe())


def labelled_part(train: SplitData, fraction: float, seed: int) -> SplitData:
    """A seeded, class-stratified ``fraction`` of ``train`` (all of it when ``fraction`` is 1):
    the part :func:`stratified_holdout` would hold out at that fraction, so each class keeps its
    share (largest-remainder rounding)."""
    if float(fraction) >= 1.0:
        return train
    _, part = stratified_holdout(train.labels, float(fraction), seed)
    return train.subset(part)


def _spec(name: str) -> DatasetSpec:
    """The registered spec for ``name``, or a UserError listing close matches."""
    _load_builtins()
    if name in _REGISTRY:
        return _REGISTRY[name]
    close = difflib.get_close_matches(str(name), list(_REGISTRY), n=3, cutoff=0.5)
    hint = f"Did you mean {', '.join(close)}? " if close else ""
    raise user_error(f"unknown data set '{name}'", "dataset",
                     f"{hint}Known data sets: {', '.join(sorted(_REGISTRY))}")


def _load_builtins() -> None:
    """Import the built-in data set modules once; each registers itself on import."""
    global _builtins_loaded
    if _builtins_loaded:
        return
    _builtins_loaded = True
    for module in _BUILTIN_MODULES:
        importlib.import_module(f"benchmark.data.{module}")
