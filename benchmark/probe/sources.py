"""The networks a probe reads: finished student and teacher runs of a suite, from MLflow.

A source is one FINISHED run of experiment ``kdbench/<suite>`` with role ``student`` (the
CE-only ``student`` baseline included) or ``teacher``, and a ``weights_path`` tag naming the
safetensors file of its final weights. Several finished runs of one configuration (the same
``config_hash``) count once, the latest. :func:`load_frozen_network` rebuilds the architecture
for the source data set and returns it frozen: eval mode (BatchNorm uses its running
statistics), no parameter requires grad.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from benchmark.errors import user_error

SOURCE_ROLES = ("student", "teacher")


@dataclass(frozen=True)
class ProbeSource:
    """One finished network of the suite and the tags the probe copies onto its result."""

    run_id: str
    role: str
    suite: str
    dataset: str
    teacher: str
    student: str
    loss: str
    seed: str
    config_hash: str
    scaled: str
    weights_path: str
    start_time: int = 0

    @property
    def arch(self) -> str:
        """The architecture of the network itself (a teacher run's ``student`` tag is its arch)."""
        return self.student

    def describe(self) -> str:
        if self.role == "teacher":
            return f"teacher {self.arch} (seed {self.seed})"
        return f"{self.teacher} -> {self.student} {self.loss} (seed {self.seed})"


def source_from_run(run) -> ProbeSource:
    tags = run.data.tags
    return ProbeSource(
        run_id=run.info.run_id, role=tags.get("kdbench.role", ""), suite=tags.get("suite", ""),
        dataset=tags.get("dataset", ""), teacher=tags.get("teacher", ""),
        student=tags.get("student", ""), loss=tags.get("loss", ""), seed=tags.get("seed", ""),
        config_hash=tags.get("config_hash", ""), scaled=tags.get("scaled", ""),
        weights_path=tags.get("weights_path", ""), start_time=int(run.info.start_time or 0))


def find_sources(tracker, suite: str, run_ids: list[str] | None = None) -> list[ProbeSource]:
    """The suite's finished students and teachers (or exactly ``run_ids``), latest per config."""
    exp_id = tracker.experiment_id(suite, create=False)
    if exp_id is None:
        raise user_error(f"No runs for suite '{suite}': the MLflow experiment 'kdbench/{suite}' "
                         "does not exist", f"tracking URI {tracker.uri}",
                         f"Run `kdbench run {suite}` first, or pass --tracking-uri for the "
                         "store that holds its runs")
    runs = tracker.client.search_runs([exp_id], max_results=50000)
    if run_ids:
        return [_checked_source(runs, run_id, suite) for run_id in dict.fromkeys(run_ids)]
    finished = [source_from_run(run) for run in runs if run.info.status == "FINISHED"]
    candidates = [s for s in finished if s.role in SOURCE_ROLES and s.weights_path]
    return _latest_per_config(candidates)


def _checked_source(runs, run_id: str, suite: str) -> ProbeSource:
    matching = [run for run in runs if run.info.run_id == run_id]
    if not matching:
        raise user_error(f"Run '{run_id}' is not in suite '{suite}'", "--runs",
                         f"Pass run ids of the experiment kdbench/{suite} (see `mlflow ui`)")
    run = matching[0]
    source = source_from_run(run)
    if run.info.status != "FINISHED" or source.role not in SOURCE_ROLES \
            or not source.weights_path:
        raise user_error(f"Run '{run_id}' cannot be probed: its status is {run.info.status}, "
                         f"its role '{source.role}', weights_path "
                         f"'{source.weights_path or 'missing'}'", "--runs",
                         "Pass FINISHED student or teacher runs that logged a weights_path")
    return source


def _latest_per_config(sources: list[ProbeSource]) -> list[ProbeSource]:
    latest: dict[str, ProbeSource] = {}
    for source in sorted(sources, key=lambda s: s.start_time):
        latest[source.config_hash or source.run_id] = source
    order = {"teacher": 0, "student": 1}
    return sorted(latest.values(), key=lambda s: (s.dataset, order[s.role], s.teacher,
                                                  s.student, s.loss, s.seed, s.run_id))


def resolve_weights(source: ProbeSource, store: str | Path | None) -> Path:
    """The weights file: the tag's path, else the same file under ``--store``."""
    path = Path(source.weights_path).expanduser()
    candidates = [path]
    if store is not None:
        parts = path.parts
        for folder in ("students", "teachers"):
            if folder in parts:
                candidates.append(Path(store) / Path(*parts[parts.index(folder):]))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise user_error(f"The weights of run {source.run_id} ({source.describe()}) are missing: "
                     f"no file at {', '.join(str(c) for c in candidates)}",
                     "MLflow tag weights_path",
                     "Run kdbench probe from the folder `kdbench run` ran in, or pass --store "
                     "with the store that holds the students/ and teachers/ folders")


def load_frozen_network(source: ProbeSource, weights: Path, num_classes: int, in_chans: int,
                        device: torch.device | str = "cpu") -> torch.nn.Module:
    """The source network with its final weights, frozen (eval mode, no grads) on ``device``."""
    import models
    from safetensors.torch import load_file

    model = models.create_model(source.arch, num_classes=num_classes, in_chans=in_chans)
    try:
        model.load_state_dict(load_file(str(weights)))
    except Exception as err:  # a shape mismatch or a damaged safetensors file
        raise user_error(f"The weights file {weights} does not fit {source.arch} with "
                         f"{num_classes} classes and {in_chans} channels ({err})",
                         f"run {source.run_id}", "Check the run's weights_path tag") from None
    return freeze(model.to(device))


def freeze(model: torch.nn.Module) -> torch.nn.Module:
    """Eval mode (BatchNorm frozen on its running statistics) and no gradients, in place."""
    model.eval()
    model.requires_grad_(False)
    return model
