"""The teacher store: trained (or imported) teachers as safetensors plus a metadata file.

Layout (owned by :class:`benchmark.store.Store`):
``<store>/teachers/<dataset>/<arch>-seed<seed>-<config_hash>.safetensors`` and a ``.json``
beside it holding arch, dataset, recipe, seed, test accuracy, the sha256 of the weights file and
where the weights came from. The key is the config hash of the teacher's own training run, so a
suite finds exactly the teacher its recipe would train; loading verifies the sha256.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Optional

import torch

from benchmark.checkpoint import atomic_write_bytes
from benchmark.errors import UserError
from benchmark.plan import RunSpec
from benchmark.recipes import get_recipe
from benchmark.store import Store


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def teacher_spec_for(arch: str, dataset: str, recipe: str = "crd-cifar", seed: int = 0,
                     epochs: Optional[int] = None, batch_size: Optional[int] = None) -> RunSpec:
    """The spec of the CE-only run that would train ``arch`` on ``dataset`` with ``recipe``."""
    return RunSpec.for_teacher(arch, seed, suite="teachers", dataset=dataset,
                               recipe=get_recipe(recipe).scaled_to(epochs, batch_size))


def untrained_teacher(spec: RunSpec, num_classes: int, in_chans: int) -> torch.nn.Module:
    """The random-teacher control's teacher: ``spec.student`` (the teacher's architecture) as
    initialised under ``torch.manual_seed(spec.seed)``, never trained and never stored. The
    caller's RNG state is left as it was, so the students' initialisation does not move."""
    import models

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        model = models.create_model(spec.student, num_classes=num_classes, in_chans=in_chans)
    return model.eval().requires_grad_(False)


class TeacherStore:
    """Teachers on disk, keyed by their training run's config hash."""

    def __init__(self, root: str | Path | Store):
        self.store = Store(root)
        self.root = self.store.teachers_dir

    def _key(self, spec: RunSpec) -> tuple[str, str, int, str]:
        return spec.dataset, spec.student, spec.seed, spec.config_hash

    def weights_path(self, spec: RunSpec) -> Path:
        return self.store.teacher_weights(*self._key(spec))

    def meta_path(self, spec: RunSpec) -> Path:
        return self.store.teacher_meta(*self._key(spec))

    def has(self, spec: RunSpec) -> bool:
        return self.weights_path(spec).exists() and self.meta_path(spec).exists()

    def save(self, spec: RunSpec, model: torch.nn.Module, test_acc: float,
             source: str = "trained", run_id: Optional[str] = None) -> dict[str, Any]:
        """Store the weights (safetensors) and metadata (json), both written atomically."""
        from safetensors.torch import save

        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        weights = self.weights_path(spec)
        atomic_write_bytes(weights, save(state))
        meta = {
            "arch": spec.student, "dataset": spec.dataset, "recipe": spec.recipe.name,
            "epochs": spec.recipe.epochs, "batch_size": spec.recipe.batch_size,
            "scaled": spec.recipe.scaled, "seed": spec.seed, "test_acc": float(test_acc),
            "sha256": sha256_of(weights), "config_hash": spec.config_hash, "source": source,
            "mlflow_run_id": run_id, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "file": weights.name,
        }
        atomic_write_bytes(self.meta_path(spec), json.dumps(meta, indent=2).encode())
        return meta

    def metadata(self, spec: RunSpec) -> dict[str, Any]:
        return json.loads(self.meta_path(spec).read_text())

    def load(self, spec: RunSpec, num_classes: int, in_chans: int,
             device: torch.device | str = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
        """The teacher in eval mode with gradients off, after checking its sha256."""
        import models
        from safetensors.torch import load_file

        if not self.has(spec):
            raise UserError(f"No teacher {spec.student} for {spec.dataset} (recipe "
                            f"{spec.recipe.name}, seed {spec.seed}) in the store at "
                            f"{self.root}. Run `kdbench teachers train --arch {spec.student} "
                            f"--dataset {spec.dataset}` or `kdbench teachers import`.")
        meta = self.metadata(spec)
        weights = self.weights_path(spec)
        actual = sha256_of(weights)
        if actual != meta["sha256"]:
            raise UserError(f"Teacher weights {weights} fail verification: sha256 {actual} does "
                            f"not match {meta['sha256']} in {self.meta_path(spec)}. The file is "
                            "corrupt or was changed; delete both files and train or import the "
                            "teacher again.")
        model = models.create_model(spec.student, num_classes=num_classes, in_chans=in_chans)
        model.load_state_dict(load_file(str(weights)))
        model.to(device).eval().requires_grad_(False)
        return model, meta

    def list(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in self.store.teacher_meta_files()]

    def import_published(self, spec: RunSpec, checkpoint: str | Path, num_classes: int,
                         test_acc: Optional[float] = None) -> dict[str, Any]:
        """Store a checkpoint written by the public CRD benchmark code under ``spec``'s key."""
        import models

        model = models.load_published_checkpoint(spec.student, str(checkpoint),
                                                 num_classes=num_classes)
        acc = float("nan") if test_acc is None else test_acc
        return self.save(spec, model, acc, source=f"imported:{Path(checkpoint).name}")
