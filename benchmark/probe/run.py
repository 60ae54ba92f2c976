"""``run_probe``: probe every finished network of a suite on one or more target data sets.

For each source run (students, the CE-only student baseline, teachers) and each target: load the
network frozen, take its embeddings of the target (cached per run and target), train the linear
probe on the probe-train split, score it on the target's scored split, and record the result as
an MLflow run (:mod:`.recording`). A probe already finished with the same source, weights,
target and settings is not redone (``force`` redoes it). A source that fails is recorded FAILED
with the reason and the others go on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from benchmark.errors import user_error
from benchmark.probe.cache import Embeddings, cached_embeddings, data_digest, fingerprint
from benchmark.probe.embeddings import extract_embeddings
from benchmark.probe.linear import train_linear_probe
from benchmark.probe.recording import (fail_probe_run, finish_probe_run, finished_probe_runs,
                                       probe_key, probe_suite, probe_tags, start_probe_run)
from benchmark.probe.settings import ProbeSettings
from benchmark.probe.sources import (ProbeSource, find_sources, load_frozen_network,
                                     resolve_weights)
from benchmark.probe.targets import TARGETS, TargetData, check_target, load_target
from benchmark.store import Store


@dataclass
class ProbeResult:
    """The outcome of probing one source on one target."""

    source: ProbeSource
    target: str
    status: str  # FINISHED, SKIPPED (already done) or FAILED
    probe_acc: float = float("nan")
    probe_train_acc: float = float("nan")
    run_id: str | None = None
    embeddings_cached: bool = False
    reason: str = ""


@dataclass
class ProbeOutcome:
    suite: str
    settings: ProbeSettings
    results: list[ProbeResult] = field(default_factory=list)

    @property
    def failed(self) -> list[ProbeResult]:
        return [r for r in self.results if r.status == "FAILED"]


@dataclass
class _Context:
    tracker: object
    store: Store
    device: object
    settings: ProbeSettings
    data_dir: str | None
    download: bool
    targets: dict = field(default_factory=dict)  # (target, source dataset) -> (data, digest)


def run_probe(suite: str, targets: Iterable[str], *, runs: list[str] | None = None,
              data_dir: str | Path | None = None, tracking_uri: str | None = None,
              store: str | Path | None = None, device: str = "auto",
              settings: ProbeSettings | None = None, download: bool = False,
              force: bool = False, progress: bool = True) -> ProbeOutcome:
    """Probe the suite's finished networks (or ``runs``) on each of ``targets``."""
    from benchmark.runner import resolve_device
    from benchmark.tracking import Tracker

    targets = [check_target(name) for name in dict.fromkeys(targets)]
    if not targets:
        raise user_error("No probe data set given", "--dataset", "Pass e.g. --dataset stl10")
    settings = settings or ProbeSettings()
    tracker = Tracker(tracking_uri)
    sources = find_sources(tracker, suite, runs)
    if not sources:
        raise user_error(f"Suite '{suite}' has no finished student or teacher runs with "
                         "weights to probe", f"experiment kdbench/{suite}",
                         f"Run `kdbench run {suite}` first")
    store = Store.resolve(store)
    weights = {s.run_id: resolve_weights(s, store) for s in sources}
    context = _Context(tracker, store, resolve_device(device), settings,
                       str(data_dir) if data_dir is not None else None, download)
    for target in targets:  # load (and check) every target before probing anything
        for dataset in dict.fromkeys(source.dataset for source in sources):
            _target(context, target, dataset)
    done = {} if force else finished_probe_runs(tracker, suite)
    outcome = ProbeOutcome(suite, settings)
    jobs = [(source, target) for target in targets for source in sources]
    for source, target in _progress(jobs, progress):
        outcome.results.append(_probe_one(context, suite, source, weights[source.run_id],
                                          target, done))
    return outcome


def _progress(jobs: list, enabled: bool) -> Iterable:
    from tqdm.auto import tqdm

    return tqdm(jobs, desc="probe", unit="run", disable=not enabled, dynamic_ncols=True)


def _probe_one(context: _Context, suite: str, source: ProbeSource, weights: Path, target: str,
               done: dict) -> ProbeResult:
    from benchmark.teachers import sha256_of

    weights_sha = sha256_of(weights)
    settings = context.settings.for_target(TARGETS[target].batch_size)
    key = probe_key(source, weights_sha, target, settings)
    if key in done:
        metrics = done[key].data.metrics
        return ProbeResult(source, target, "SKIPPED", metrics.get("probe_acc", float("nan")),
                           metrics.get("probe_train_acc", float("nan")), done[key].info.run_id)
    data, digest = _target(context, target, source.dataset)
    tags = probe_tags(source, target, key, settings,
                      {"device": str(context.device), "weights_sha256": weights_sha})
    run_id = start_probe_run(context.tracker, suite, tags,
                             _params(settings, source, data, weights))
    try:
        return _fit_and_record(context, settings, source, weights, weights_sha, data, digest,
                               run_id)
    except Exception as err:  # one bad source must not stop the others
        reason = f"{type(err).__name__}: {err}"
        fail_probe_run(context.tracker, run_id, reason)
        return ProbeResult(source, target, "FAILED", run_id=run_id, reason=reason)


def _fit_and_record(context: _Context, settings: ProbeSettings, source: ProbeSource,
                    weights: Path, weights_sha: str, data: TargetData, digest: str,
                    run_id: str) -> ProbeResult:
    from benchmark.data import dataset_info

    info = dataset_info(source.dataset)
    stamp = fingerprint(weights_sha, source.arch, info.mean, info.std, digest)
    started = time.perf_counter()

    def compute() -> Embeddings:
        model = load_frozen_network(source, weights, info.num_classes, info.in_chans,
                                    context.device)
        extract = lambda split: extract_embeddings(model, split, info.mean, info.std,
                                                   device=context.device)
        return Embeddings(extract(data.train), data.train.labels, extract(data.test),
                          data.test.labels)

    embeddings, cached = cached_embeddings(context.store.embeddings(source.run_id, data.name),
                                           stamp, compute)
    embedding_time = time.perf_counter() - started
    started = time.perf_counter()
    probe = train_linear_probe(embeddings.train, embeddings.train_labels, data.num_classes,
                               settings, context.device)
    probe_time = time.perf_counter() - started
    test_acc = probe.accuracy(embeddings.test, embeddings.test_labels)
    train_acc = probe.accuracy(embeddings.train, embeddings.train_labels)
    finish_probe_run(context.tracker, run_id, {
        "probe_acc": test_acc, "probe_train_acc": train_acc,
        "probe_final_loss": probe.final_loss, "embedding_dim": embeddings.dim,
        "embedding_time_s": embedding_time, "probe_time_s": probe_time,
        "embeddings_cached": float(cached)})
    return ProbeResult(source, data.name, "FINISHED", test_acc, train_acc, run_id, cached)


def _target(context: _Context, target: str, source_dataset: str) -> tuple[TargetData, str]:
    """The target at the source data set's input size, loaded once per command."""
    from benchmark.data import dataset_info

    key = (target, source_dataset)
    if key not in context.targets:
        data = load_target(target, context.data_dir, dataset_info(source_dataset),
                           download=context.download)
        digest = data_digest(data.train.images, data.train.labels, data.test.images,
                             data.test.labels)
        context.targets[key] = (data, digest)
    return context.targets[key]


def _params(settings: ProbeSettings, source: ProbeSource, data: TargetData,
            weights: Path) -> dict[str, str]:
    from benchmark.data import dataset_info

    info = dataset_info(source.dataset)
    return {**settings.params(), "probe.target": data.name,
            "probe.scored_split": data.scored_split, "probe.train_size": str(len(data.train)),
            "probe.test_size": str(len(data.test)), "probe.num_classes": str(data.num_classes),
            "probe.image_size": str(int(data.train.images.shape[-1])),
            "probe.normalization": f"source {info.name} mean {info.mean} std {info.std}",
            "probe.backbone": "frozen (eval mode, BatchNorm running statistics, no grads)",
            "probe.features": "embedding tap (pooled vector before the classifier)",
            "source.weights_path": str(weights), "source.arch": source.arch}


def summary_lines(outcome: ProbeOutcome) -> list[str]:
    """A markdown table of every probe of the command, then counts."""
    lines = [f"Linear probe of suite '{outcome.suite}' ({outcome.settings.describe()}); "
             f"results in MLflow experiment kdbench/{probe_suite(outcome.suite)}.", "",
             "| target | source | loss | seed | probe_acc (%) | status |",
             "|---|---|---|---:|---:|---|"]
    for r in outcome.results:
        where = (f"teacher {r.source.arch}" if r.source.role == "teacher"
                 else f"{r.source.teacher} -> {r.source.student}")
        status = r.status + (f": {r.reason}" if r.reason else "")
        lines.append(f"| {r.target} | {where} | {r.source.loss} | {r.source.seed} | "
                     f"{r.probe_acc:.2f} | {status} |")
    counts = {status: sum(r.status == status for r in outcome.results)
              for status in ("FINISHED", "SKIPPED", "FAILED")}
    lines += ["", f"{counts['FINISHED']} probed, {counts['SKIPPED']} already done (skipped), "
                  f"{counts['FAILED']} failed."]
    return lines


def print_summary(outcome: ProbeOutcome, write: Callable[[str], None] = print) -> None:
    for line in summary_lines(outcome):
        write(line)
