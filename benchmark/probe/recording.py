"""Probe results in MLflow: one run per (source run, target, settings) in ``kdbench/<suite>-probe``.

A separate experiment keeps the suite's own experiment (and so its leaderboard) unchanged. Each
probe run carries DESIGN.md's tags copied from its source (``teacher``, ``student``, ``loss``,
``seed``, ``config_hash``, ``scaled``, ``suite``) with ``kdbench.role`` = ``probe``,
``source_role`` = ``student`` | ``teacher``, ``source_run_id``, ``source_dataset``, and
``dataset`` = the target; the probe settings and data sizes as params; ``probe_acc`` (top-1 % on
the scored split) and ``probe_train_acc`` as metrics. ``probe_key`` identifies the exact probe
(source run, weights sha256, target, settings): a FINISHED run with that key is not redone.
"""

from __future__ import annotations

import hashlib

from benchmark.probe.settings import ProbeSettings
from benchmark.probe.sources import ProbeSource

from benchmark.records import PROBE_SUFFIX as EXPERIMENT_SUFFIX  # noqa: F401
from benchmark.records import Role, Status, Tag, probe_suite

PROBE_ROLE = Role.PROBE


def probe_key(source: ProbeSource, weights_sha256: str, target: str,
              settings: ProbeSettings) -> str:
    text = "|".join([source.run_id, weights_sha256, target, settings.key()])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def finished_probe_runs(tracker, suite: str) -> dict[str, object]:
    """``probe_key -> latest FINISHED probe run`` of the suite."""
    exp_id = tracker.experiment_id(probe_suite(suite), create=False)
    if exp_id is None:
        return {}
    runs = tracker.search(exp_id)
    done = {}
    for run in sorted(runs, key=lambda r: r.info.start_time or 0):
        if run.info.status == Status.FINISHED and run.data.tags.get("probe_key"):
            done[run.data.tags["probe_key"]] = run
    return done


def probe_tags(source: ProbeSource, target: str, key: str, settings: ProbeSettings,
               extra: dict[str, str]) -> dict[str, str]:
    from benchmark.tracking import run_environment_tags

    return {
        **run_environment_tags(),
        Tag.ROLE: PROBE_ROLE, "source_role": source.role, "source_run_id": source.run_id,
        Tag.SUITE: source.suite, "source_dataset": source.dataset, Tag.DATASET: target,
        Tag.TEACHER: source.teacher, Tag.STUDENT: source.student, Tag.LOSS: source.loss,
        Tag.SEED: source.seed, Tag.CONFIG_HASH: source.config_hash, Tag.SCALED: source.scaled,
        "probe_key": key, "probe_settings": settings.describe(),
        Tag.RUN_NAME: f"probe:{target}:{source.loss}:{source.student}:s{source.seed}",
        **extra,
    }


def start_probe_run(tracker, suite: str, tags: dict[str, str], params: dict[str, str]) -> str:
    """Create a RUNNING probe run with ``tags`` and ``params``; returns its id."""
    return tracker.create_run(tracker.experiment_id(probe_suite(suite)), tags, params)


def finish_probe_run(tracker, run_id: str, metrics: dict[str, float]) -> None:
    tracker.log_metrics(run_id, metrics, step=0)
    tracker.finish(run_id, Status.FINISHED)


def fail_probe_run(tracker, run_id: str, reason: str) -> None:
    tracker.finish(run_id, Status.FAILED, reason=reason)
