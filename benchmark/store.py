"""The on-disk store: :class:`Store` is the one owner of its layout and of its default place.

Nothing else builds a path under the store; every module asks a :class:`Store` for it::

    <store>/                          --store, else $KDBENCH_STORE, else ./kdbench-store
    ├── teachers/
    │   └── <dataset>/
    │       ├── <arch>-seed<seed>-<config_hash>.safetensors   teacher weights
    │       └── <arch>-seed<seed>-<config_hash>.json          its metadata (sha256, recipe, ...)
    ├── students/
    │   └── <config_hash>.safetensors                         a finished student's weights
    ├── checkpoints/
    │   ├── <config_hash>.pt                                  epoch checkpoint of a run under way
    │   └── <config_hash>.prev.pt                             the generation before it
    ├── embeddings/
    │   └── <run id>-<target>.pt                              probe embedding cache
    ├── locks/
    │   └── <name>.lock                                       inter-process locks
    └── leases/
        └── <config_hash>.json                                who trains a run now (leases.py)

An unreadable file is moved aside beside itself as ``<name>.corrupt-<time>``
(:func:`benchmark.checkpoint.quarantine`) and never read again. Teachers are keyed by the
config hash of their own training run, students and checkpoints by the run's config hash. MLflow's ``weights_path`` tag records the absolute file; a store moved
to another folder is found again with :meth:`Store.relocate`. Data-set caches live under the
data folder (``benchmark/data/cache.py``), not in the store.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_STORE = "kdbench-store"
STORE_ENV = "KDBENCH_STORE"

_TEACHERS, _STUDENTS, _CHECKPOINTS, _EMBEDDINGS, _LOCKS, _LEASES = (
    "teachers", "students", "checkpoints", "embeddings", "locks", "leases")
_WEIGHTS, _META, _CHECKPOINT, _LOCK = ".safetensors", ".json", ".pt", ".lock"


@dataclass(frozen=True)
class Store:
    """The store at ``root`` and the path of every kind of file in it."""

    root: Path

    def __init__(self, root: str | os.PathLike):
        object.__setattr__(self, "root", Path(root))

    @classmethod
    def resolve(cls, store: str | os.PathLike | None = None) -> Store:
        """The one default rule: ``store`` if given, else ``$KDBENCH_STORE``, else
        ``./kdbench-store`` (relative paths stay relative to the working directory)."""
        if isinstance(store, Store):
            return store
        return cls(store or os.environ.get(STORE_ENV) or DEFAULT_STORE)

    def __fspath__(self) -> str:
        return str(self.root)

    def __str__(self) -> str:
        return str(self.root)

    def absolute(self) -> Store:
        """The same store with an absolute root (for worker processes in other folders)."""
        return Store(self.root.expanduser().resolve())

    # ----- folders -----
    @property
    def teachers_dir(self) -> Path:
        return self.root / _TEACHERS

    @property
    def students_dir(self) -> Path:
        return self.root / _STUDENTS

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / _CHECKPOINTS

    @property
    def embeddings_dir(self) -> Path:
        return self.root / _EMBEDDINGS

    @property
    def locks_dir(self) -> Path:
        return self.root / _LOCKS

    @property
    def leases_dir(self) -> Path:
        return self.root / _LEASES

    # ----- files -----
    def teacher_weights(self, dataset: str, arch: str, seed: int, config_hash: str) -> Path:
        return self._teacher_stem(dataset, arch, seed, config_hash).with_suffix(_WEIGHTS)

    def teacher_meta(self, dataset: str, arch: str, seed: int, config_hash: str) -> Path:
        return self._teacher_stem(dataset, arch, seed, config_hash).with_suffix(_META)

    def teacher_meta_files(self) -> list[Path]:
        """Every teacher's metadata file, sorted."""
        return sorted(self.teachers_dir.glob(f"*/*{_META}"))

    def _teacher_stem(self, dataset: str, arch: str, seed: int, config_hash: str) -> Path:
        return self.teachers_dir / dataset / f"{arch}-seed{seed}-{config_hash}"

    def student_weights(self, config_hash: str) -> Path:
        return self.students_dir / f"{config_hash}{_WEIGHTS}"

    def checkpoint(self, config_hash: str) -> Path:
        return self.checkpoints_dir / f"{config_hash}{_CHECKPOINT}"

    def embeddings(self, run_id: str, target: str) -> Path:
        return self.embeddings_dir / f"{run_id}-{target}{_CHECKPOINT}"

    def lock(self, name: str) -> Path:
        return self.locks_dir / f"{name}{_LOCK}"

    def lease(self, config_hash: str) -> Path:
        return self.leases_dir / f"{config_hash}{_META}"

    # ----- operations -----
    def remove_run_files(self, config_hash: str) -> None:
        """Delete a run's epoch checkpoint and student weights (either may be missing)."""
        from benchmark.checkpoint import remove_checkpoint

        remove_checkpoint(self.checkpoint(config_hash))
        self.student_weights(config_hash).unlink(missing_ok=True)

    def relocate(self, path: str | os.PathLike) -> Path:
        """``path`` (a student's or teacher's weights or metadata file recorded under some store
        root, e.g. before the store was moved) mapped onto this store; any other path as is."""
        path = Path(path)
        parts = path.parts
        if len(parts) >= 2 and parts[-2] == _STUDENTS:
            return self.students_dir / path.name
        if len(parts) >= 3 and parts[-3] == _TEACHERS:
            return self.teachers_dir / parts[-2] / path.name
        return path
