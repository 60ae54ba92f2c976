"""The networks a probe reads: finished student and teacher runs of a suite, from MLflow.

A source is one FINISHED run of experiment ``kdbench/<suite>`` with role ``student`` (the
CE-only ``student`` baseline included) or ``teacher``, and a ``weights_path`` tag naming the
safetensors file of its final weights. Which runs are probed is decided by the rule the
leaderboard uses (:mod:`benchmark.records`): the run that counts per config hash, in the suite's
own configuration of each cell. :func:`load_frozen_network` rebuilds the architecture
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
    """A source from an MLflow run or a :class:`benchmark.records.RunRecord`."""
    from benchmark.records import RunRecord, Tag

    record = run if isinstance(run, RunRecord) else RunRecord.from_mlflow(run)
    tag = record.tag
    return ProbeSource(
        run_id=record.run_id, role=tag(Tag.ROLE), suite=tag(Tag.SUITE), dataset=tag(Tag.DATASET),
        teacher=tag(Tag.TEACHER), student=tag(Tag.STUDENT), loss=tag(Tag.LOSS),
        seed=tag(Tag.SEED), config_hash=tag(Tag.CONFIG_HASH), scaled=tag(Tag.SCALED),
        weights_path=tag(Tag.WEIGHTS_PATH), start_time=record.start_time)


def find_sources(tracker, suite: str, run_ids: list[str] | None = None, *,
                 all_configs: bool = False) -> list[ProbeSource]:
    """The suite's networks to probe (or exactly ``run_ids``), chosen by the rule the
    leaderboard and validate use: the run that counts per config hash
    (:func:`benchmark.records.select`), in the suite's own configuration of each cell unless
    ``all_configs``."""
    from benchmark.records import default_settings, in_default_setting, planned_cells, select

    if tracker.experiment_id(suite, create=False) is None:
        raise user_error(f"No runs for suite '{suite}': the MLflow experiment 'kdbench/{suite}' "
                         "does not exist", f"tracking URI {tracker.uri}",
                         f"Run `kdbench run {suite}` first, or pass --tracking-uri for the "
                         "store that holds its runs")
    records = tracker.records(suite)
    if run_ids:
        return [_checked_source(records, run_id, suite) for run_id in dict.fromkeys(run_ids)]
    counted = [r for r in select(records).records()
               if r.role in SOURCE_ROLES and r.tag("weights_path")]
    if not all_configs:
        planned, _ = planned_cells(suite)
        defaults = default_settings(counted, {k: s.setting_hash
                                              for k, s in (planned or {}).items()})
        counted = [r for r in counted if in_default_setting(r, defaults)]
    order = {"teacher": 0, "student": 1}
    sources = [source_from_run(r) for r in counted]
    return sorted(sources, key=lambda s: (s.dataset, order[s.role], s.teacher, s.student,
                                          s.loss, s.seed, s.run_id))


def _checked_source(records, run_id: str, suite: str) -> ProbeSource:
    matching = [record for record in records if record.run_id == run_id]
    if not matching:
        raise user_error(f"Run '{run_id}' is not in suite '{suite}'", "--runs",
                         f"Pass run ids of the experiment kdbench/{suite} (see `mlflow ui`)")
    record = matching[0]
    source = source_from_run(record)
    if record.status != "FINISHED" or source.role not in SOURCE_ROLES \
            or not source.weights_path:
        raise user_error(f"Run '{run_id}' cannot be probed: its status is {record.status}, "
                         f"its role '{source.role}', weights_path "
                         f"'{source.weights_path or 'missing'}'", "--runs",
                         "Pass FINISHED student or teacher runs that logged a weights_path")
    return source


def resolve_weights(source: ProbeSource, store: str | Path | None) -> Path:
    """The weights file: the tag's path, else the same file relocated onto ``store`` (a
    :class:`benchmark.store.Store` or its root; None: the tag's path only)."""
    from benchmark.store import Store

    path = Path(source.weights_path).expanduser()
    candidates = [path]
    if store is not None:
        relocated = Store(store).relocate(path)
        if relocated != path:
            candidates.append(relocated)
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

    from losses.registry import HEAD_PREFIX

    model = models.create_model(source.arch, num_classes=num_classes, in_chans=in_chans)
    try:
        # A head-owning loss's head (SimKD) is saved beside the student's weights under
        # HEAD_PREFIX; the probe uses the student's own embedding, so it is left out.
        model.load_state_dict({k: v for k, v in load_file(str(weights)).items()
                               if not k.startswith(HEAD_PREFIX)})
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
