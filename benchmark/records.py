"""The MLflow schema's one home: experiment names, tag, param and metric names, run statuses,
the :class:`RunRecord` read from any MLflow run, and the ONE rule for which runs count.

Every module that writes or reads kdbench runs (runner, engine hooks, leaderboard, validate,
probe, studies) takes its names from here, and every module that decides "which run is *the*
run" calls :func:`select`:

- a run's identity is its ``config_hash`` (the full resolved configuration, seed included:
  :attr:`benchmark.plan.RunSpec.config_hash`);
- of the runs with one hash, the latest FINISHED run that logged the metric counts; earlier
  FINISHED runs of that hash are *reruns* (listed, never averaged in);
- runs with different hashes never supersede each other: a 2-epoch rerun of seed 0 or a
  reweighted run is another configuration, never a replacement;
- RUNNING / SCHEDULED runs are in progress, FAILED runs carry ``failure_reason``, KILLED runs
  were interrupted (a rerun resumes them); none of them counts.

A leaderboard cell averages counted runs of one *setting* (the configuration without its seeds,
tag ``setting_hash``); :func:`setting_of` reads it, with a fallback for runs recorded before the
tag existed.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Optional

if TYPE_CHECKING:  # pragma: no cover
    from benchmark.plan import RunSpec

# ----- experiments -----
EXPERIMENT_PREFIX = "kdbench/"
TUNE_SUFFIX = "-tune"
PROBE_SUFFIX = "-probe"


def experiment_name(suite: str) -> str:
    """The experiment of a suite's runs (``kdbench/<suite>``); also used with the tune and probe
    pseudo-suites below."""
    return f"{EXPERIMENT_PREFIX}{suite}"


def tune_suite(suite: str) -> str:
    """The pseudo-suite whose experiment (``kdbench/<suite>-tune``) holds a suite's studies."""
    return suite + TUNE_SUFFIX


def probe_suite(suite: str) -> str:
    """The pseudo-suite whose experiment (``kdbench/<suite>-probe``) holds its probe runs."""
    return suite + PROBE_SUFFIX


def suite_of_experiment(name: str) -> Optional[str]:
    """``kdbench/digits`` -> ``digits``; None for experiments that are not kdbench's."""
    return name[len(EXPERIMENT_PREFIX):] if name.startswith(EXPERIMENT_PREFIX) else None


# ----- names -----
class Tag:
    """Tag names (DESIGN.md, "MLflow schema")."""

    ROLE = "kdbench.role"
    SUITE = "suite"
    DATASET = "dataset"
    TEACHER = "teacher"
    STUDENT = "student"
    LOSS = "loss"
    SEED = "seed"
    RECIPE = "recipe"
    SCALED = "scaled"
    CONFIG_HASH = "config_hash"
    SETTING_HASH = "setting_hash"
    SPEC = "kdbench.spec"
    FAILURE_REASON = "failure_reason"
    WEIGHTS_PATH = "weights_path"
    RESUMED_AT = "kdbench.resumed_at_epoch"
    DEVICE = "device"
    HOST = "host"
    PID = "pid"
    SOURCE = "source"
    SHA256 = "sha256"
    TEACHER_SHA256 = "teacher_sha256"
    RUN_NAME = "mlflow.runName"
    PARENT_RUN = "mlflow.parentRunId"


class Role:
    TEACHER = "teacher"
    STUDENT = "student"
    STUDY = "study"
    TRIAL = "trial"
    PROBE = "probe"


class Metric:
    """Metric names; accuracies are in percent."""

    TEST_ACC_LAST = "test_acc_last"  # the protocol number
    TEST_ACC_BEST = "test_acc_best"
    TEST_TOP5_LAST = "test_top5_last"
    BEST_EPOCH = "best_epoch"
    WALL_TIME_S = "wall_time_s"
    TEST_ACC = "test_acc"
    VAL_ACC = "val_acc"
    TEST_AGREEMENT = "test_agreement"  # % of test images where student and teacher top-1 agree
    TEST_KL = "test_kl"  # mean KL(teacher || student) over the test images, nats, T = 1


#: ``--metric`` choice -> final metric.
FINAL_METRICS = {"last": Metric.TEST_ACC_LAST, "best": Metric.TEST_ACC_BEST}

#: Artifact holding a run's resolved configuration.
CONFIG_ARTIFACT = "config.json"


class Status:
    """MLflow run statuses as kdbench uses them."""

    FINISHED = "FINISHED"
    RUNNING = "RUNNING"
    SCHEDULED = "SCHEDULED"
    FAILED = "FAILED"
    KILLED = "KILLED"
    IN_PROGRESS = (RUNNING, SCHEDULED)
    RESUMABLE = (RUNNING, SCHEDULED, KILLED)  # a rerun reopens and resumes these


def spec_tags(spec: "RunSpec") -> dict[str, str]:
    """The tags a spec alone decides, the full spec as JSON included."""
    return {
        Tag.ROLE: spec.role, Tag.SUITE: spec.suite, Tag.DATASET: spec.dataset,
        Tag.TEACHER: spec.teacher or spec.student, Tag.STUDENT: spec.student,
        Tag.LOSS: spec.loss, Tag.SEED: str(spec.seed), Tag.RECIPE: spec.recipe.name,
        Tag.CONFIG_HASH: spec.config_hash, Tag.SETTING_HASH: spec.setting_hash,
        Tag.SCALED: str(spec.scaled).lower(), Tag.SPEC: spec.to_json(),
        Tag.RUN_NAME: f"{spec.loss}:{spec.student}:s{spec.seed}",
    }


# ----- records -----
@dataclass(frozen=True)
class RunRecord:
    """One MLflow run as kdbench reads it (from :meth:`from_mlflow`)."""

    run_id: str
    status: str
    start_time: int
    tags: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_mlflow(cls, run) -> "RunRecord":
        """From an ``mlflow.entities.Run`` (``MlflowClient.search_runs`` / ``get_run``)."""
        return cls(run_id=run.info.run_id, status=run.info.status or "",
                   start_time=int(run.info.start_time or 0), tags=dict(run.data.tags),
                   metrics=dict(run.data.metrics), params=dict(run.data.params))

    def tag(self, name: str) -> str:
        return self.tags.get(name, "")

    @property
    def role(self) -> str:
        role = self.tag(Tag.ROLE)
        if role:
            return role
        return Role.TEACHER if self.tag(Tag.LOSS) == Role.TEACHER else Role.STUDENT

    @property
    def config_hash(self) -> str:
        return self.tag(Tag.CONFIG_HASH)

    @property
    def identity(self) -> str:
        """What "the same run" means: the config hash (a run without one is only itself)."""
        return self.config_hash or f"run:{self.run_id}"

    @property
    def setting_hash(self) -> str:
        return setting_of(self)

    @property
    def spec(self) -> Optional["RunSpec"]:
        """The resolved spec the run was trained with (None for runs recorded without it)."""
        text = self.tag(Tag.SPEC)
        if not text:
            return None
        from benchmark.plan import RunSpec

        try:
            return RunSpec.from_json(text)
        except ValueError:
            return None

    @property
    def failure_reason(self) -> str:
        return self.tag(Tag.FAILURE_REASON)

    def metric(self, name: str) -> float:
        value = self.metrics.get(name)
        return math.nan if value is None else float(value)


def setting_of(record: RunRecord) -> str:
    """The record's setting: its ``setting_hash`` tag; for runs recorded before that tag, a
    digest of its describing tags (dataset, pair, label, recipe, scaled), marked ``legacy:``."""
    tagged = record.tag(Tag.SETTING_HASH)
    if tagged:
        return tagged
    described = {k: record.tag(k) for k in (Tag.ROLE, Tag.DATASET, Tag.TEACHER, Tag.STUDENT,
                                            Tag.LOSS, Tag.RECIPE, Tag.SCALED)}
    text = json.dumps(described, sort_keys=True)
    return "legacy:" + hashlib.sha256(text.encode()).hexdigest()[:12]


# ----- the one rule -----
@dataclass(frozen=True)
class Excluded:
    """A run that does not count, and why."""

    record: RunRecord
    reason: str


@dataclass
class Selection:
    """The outcome of :func:`select` over one experiment's records."""

    counted: dict[str, RunRecord]  # identity -> the run that counts
    excluded: list[Excluded]  # in progress, failed, killed, finished without the metric, reruns

    def records(self) -> list[RunRecord]:
        return list(self.counted.values())

    def get(self, config_hash: str) -> Optional[RunRecord]:
        return self.counted.get(config_hash)


def exclusion_reason(record: RunRecord, metric: str) -> Optional[str]:
    """Why a run cannot count, or None when it can."""
    if record.status in Status.IN_PROGRESS:
        return "in progress"
    if record.status == Status.FAILED:
        return f"failed: {record.failure_reason or 'no failure_reason recorded'}"
    if record.status != Status.FINISHED:
        return record.status.lower() or "unknown status"
    if math.isnan(record.metric(metric)):
        return f"finished without {metric}"
    return None


def select(records: Iterable[RunRecord], metric: str = Metric.TEST_ACC_LAST) -> Selection:
    """THE rule for which runs count: per config hash, the latest FINISHED run with ``metric``;
    earlier finished runs of that hash are reruns; other hashes never supersede it."""
    counted: dict[str, RunRecord] = {}
    excluded: list[Excluded] = []
    for record in sorted(records, key=lambda r: (r.start_time, r.run_id)):
        reason = exclusion_reason(record, metric)
        if reason is not None:
            excluded.append(Excluded(record, reason))
            continue
        earlier = counted.get(record.identity)
        if earlier is not None:
            excluded.append(Excluded(earlier, f"rerun: a later run ({record.run_id}) of the "
                                              "same configuration and seed counts"))
        counted[record.identity] = record
    return Selection(counted, excluded)


def by_identity(records: Iterable[RunRecord]) -> dict[str, list[RunRecord]]:
    """Records grouped by :attr:`RunRecord.identity`, each group oldest first."""
    grouped: dict[str, list[RunRecord]] = {}
    for record in sorted(records, key=lambda r: (r.start_time, r.run_id)):
        grouped.setdefault(record.identity, []).append(record)
    return grouped


def resumable(records: Iterable[RunRecord]) -> Optional[RunRecord]:
    """The interrupted run (RUNNING, SCHEDULED or KILLED) a rerun of this hash reuses: the
    latest one."""
    candidates = [r for r in records if r.status in Status.RESUMABLE]
    return max(candidates, key=lambda r: (r.start_time, r.run_id)) if candidates else None


def spec_settings(specs: Iterable["RunSpec"]) -> dict[tuple, str]:
    """``(dataset, teacher, student, loss label) -> setting hash`` of a plan's specs: the
    configuration each leaderboard cell shows by default."""
    return {cell_key_of_spec(spec): spec.setting_hash for spec in specs}


def planned_cells(suite_name: str) -> tuple[Optional[dict[tuple, "RunSpec"]], Optional[str]]:
    """``cell key -> RunSpec`` of everything a suite plans (teachers included), or
    ``(None, why)`` when the suite file cannot be loaded here (then each cell shows the
    setting with the most runs, :func:`default_settings`)."""
    from benchmark.config import load_suite
    from benchmark.errors import UserError
    from benchmark.plan import expand_suite, teacher_specs

    try:
        suite = load_suite(suite_name)
        runs = expand_suite(suite)
    except UserError as err:
        return None, str(err)
    return {cell_key_of_spec(spec): spec for spec in [*runs, *teacher_specs(runs)]}, None


def cell_key_of_spec(spec: "RunSpec") -> tuple:
    return (spec.dataset, spec.teacher or spec.student, spec.student, spec.loss)


def cell_key(record: RunRecord) -> tuple:
    """``(dataset, teacher, student, loss label)`` of a record (a teacher run's teacher is its
    own arch)."""
    return (record.tag(Tag.DATASET), record.tag(Tag.TEACHER) or record.tag(Tag.STUDENT),
            record.tag(Tag.STUDENT), record.tag(Tag.LOSS))


def default_settings(records: Iterable[RunRecord],
                     planned: Mapping[tuple, str] | None = None) -> dict[tuple, str]:
    """The setting each cell shows by default: the one the suite plans for the cell; for cells
    the suite does not plan (or without a suite), the setting with the most counted runs (ties:
    the earliest recorded)."""
    planned = dict(planned or {})
    counts: dict[tuple, dict[str, list[int]]] = {}
    for record in records:
        slot = counts.setdefault(cell_key(record), {}).setdefault(record.setting_hash,
                                                                  [0, record.start_time])
        slot[0] += 1
        slot[1] = min(slot[1], record.start_time)
    chosen = {}
    for key, settings in counts.items():
        if key in planned:
            chosen[key] = planned[key]
        else:
            chosen[key] = max(settings, key=lambda s: (settings[s][0], -settings[s][1]))
    return {**planned, **chosen}


def in_default_setting(record: RunRecord, defaults: Mapping[tuple, str]) -> bool:
    return defaults.get(cell_key(record)) == record.setting_hash


def describe_difference(spec: Optional["RunSpec"], reference: Optional["RunSpec"]) -> str:
    """What sets ``spec`` apart from the cell's ``reference`` setting, in a row label's words:
    ``w=1000``, ``2 ep, scaled``, ``kd.T=2``; derived from the fields, so a new field shows too."""
    if spec is None:
        return "recorded before kdbench 0.2"
    if reference is None:
        return "not in the suite"
    mine, theirs = _flat(spec), _flat(reference)
    parts = []
    for key in sorted(set(mine) | set(theirs), key=_label_order):
        if key in ("seed", "teacher_seed", "suite") or mine.get(key) == theirs.get(key):
            continue
        parts.append(_label_part(key, mine.get(key), spec))
    return ", ".join(p for p in parts if p) or "same setting"


def _flat(spec: "RunSpec") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in spec.model_dump(mode="json").items():
        if name == "terms":
            flat.update({f"weight.{t}": w for t, w in value})
        elif name == "hparams":
            flat.update({f"hparam.{t}.{k}": v for t, values in value for k, v in values})
        elif name == "recipe":
            flat.update({f"recipe.{k}": json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v
                         for k, v in value.items()})
        else:
            flat[name] = value
    return flat


def _label_order(key: str) -> tuple:
    order = ("weight.", "hparam.", "recipe.epochs", "recipe.batch_size", "recipe.scaled")
    return (next((i for i, p in enumerate(order) if key.startswith(p)), len(order)), key)


def _label_part(key: str, value: Any, spec: "RunSpec") -> str:
    method_terms = [t for t, _ in spec.terms if t not in ("ce", "kd")]
    if key.startswith("weight."):
        term = key[len("weight."):]
        shown = "absent" if value is None else f"{value:g}"
        return f"w={shown}" if [term] == method_terms else f"{term}={shown}"
    if key.startswith("hparam."):
        return f"{key[len('hparam.'):]}={value}"
    if key == "recipe.epochs":
        return f"{value} ep"
    if key == "recipe.batch_size":
        return f"batch {value}"
    if key == "recipe.scaled":
        return "scaled" if value else "unscaled"
    if key == "amp":
        return value or "fp32"
    if key == "channels_last":
        return "channels_last" if value else "contiguous"
    if key == "recipe.milestones":
        return ""  # follows the epochs
    return f"{key}={value}"
