"""The cohort training engine.

Students that share a dataset, teacher, seed and recipe train together from one data stream:
each batch is augmented once and the teacher's forward runs once (eval mode, under
``torch.no_grad``, its tapped features used as they are, not copied), feeding every student.
Each student (a :class:`Member`) has its own model, loss terms, optimizer, schedule and RNG
state, so a cohort's results are identical to training each student alone. Teacher-training
runs are cohorts without a teacher. On CUDA the members' steps of a batch run on one stream each
and overlap on the GPU (:meth:`Cohort._step_members`); nothing in an epoch waits for the host.

After every epoch each member writes an atomic checkpoint (model, optimizer, scheduler, loss
state such as CRD's memory banks, RNG state, metric history), then logs the epoch's metrics; a
restarted cohort resumes each member from its checkpoint, logs the checkpointed epoch if the
process died before logging it (so every epoch is in MLflow exactly once), and reproduces the
uninterrupted run exactly, because the data stream of epoch e depends only on (seed, e).
"""

from __future__ import annotations

import contextlib
import math
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import torch
from torch import nn

from benchmark.checkpoint import load_checkpoint, save_checkpoint
from benchmark.fast_path import compile_model
from benchmark.heads import HeadedStudent
from benchmark.plan import RunSpec, mlflow_name
from benchmark.stages import PretrainStage, run_pretraining
from benchmark.store import Store


@dataclass
class RunEnv:
    """Where and how a cohort runs."""

    device: torch.device
    store: Path  # the store's root; Store(store) names every file in it
    data_dir: Optional[Path] = None
    download: bool = False
    tracker: Any = None  # benchmark.tracking.Tracker or None
    suite: str = "adhoc"
    progress: bool = False
    eval_batch_size: int = 512
    eval_splits: tuple[str, ...] = ("val", "test")  # studies pass ("val",): never the test set
    run_ids: dict[str, str] = field(default_factory=dict)  # config_hash -> MLflow run id
    # CUDA: each member's step on its own stream, overlapping on the GPU (same kernels, same
    # numbers); off: the members' steps one after the other on the current stream
    member_streams: bool = True


@dataclass
class RunResult:
    """What one run ended with."""

    spec: RunSpec
    status: str  # FINISHED | FAILED | PRUNED
    test_acc_last: float = float("nan")
    test_acc_best: float = float("nan")
    best_epoch: int = 0
    test_top5_last: float = float("nan")
    wall_time_s: float = 0.0
    run_id: Optional[str] = None
    reason: Optional[str] = None
    weights_path: Optional[str] = None


class NonFiniteLoss(RuntimeError):
    """A run's loss became NaN or infinite."""


@contextlib.contextmanager
def autocast_for(device: torch.device, amp: Optional[str]) -> Iterator[None]:
    if amp == "bf16":
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            yield
    else:
        yield


def accuracy(model: nn.Module, loader, device: torch.device, amp: Optional[str] = None,
             channels_last: bool = False) -> float:
    """Top-1 accuracy in percent of ``model`` over ``loader`` (eval mode, no augmentation)."""
    return topk_accuracy(model, loader, device, amp, channels_last)[0]


def topk_accuracy(model: nn.Module, loader, device: torch.device, amp: Optional[str] = None,
                  channels_last: bool = False) -> tuple[float, float]:
    """Top-1 and top-5 accuracy in percent (eval mode, no augmentation, model mode restored)."""
    was_training = model.training
    model.eval()
    top1 = top5 = total = 0
    with torch.inference_mode(), autocast_for(device, amp):
        for batch in loader:
            images = batch.images
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            logits = model(images)
            ranked = logits.topk(min(5, logits.shape[1]), dim=1).indices
            hits = ranked == batch.labels[:, None]
            top1 += int(hits[:, 0].sum())
            top5 += int(hits.any(dim=1).sum())
            total += batch.labels.numel()
    model.train(was_training)
    return 100.0 * top1 / max(total, 1), 100.0 * top5 / max(total, 1)


class Member:
    """One run inside a cohort: its student, loss terms, optimizer, schedule and RNG."""

    def __init__(self, spec: RunSpec, data, teacher_shapes: dict[str, tuple], env: RunEnv,
                 teacher: Optional[nn.Module] = None):
        import models
        from losses import LossContext, create_loss
        from losses.composite import WeightedLoss

        self.spec = spec
        self.env = env
        self.device = env.device
        info = data.info
        torch.manual_seed(spec.seed)
        model = models.create_model(spec.student, num_classes=info.num_classes,
                                    in_chans=info.in_chans)
        input_size = (info.in_chans, info.image_size, info.image_size)
        student_shapes = {name: tuple(t.shape) for name, t in
                          models.tap_info(model, input_size=input_size).items()}
        context = LossContext(num_samples=len(data.train.labels), num_classes=info.num_classes,
                              train_labels=data.train.labels, teacher=teacher)
        terms = {name: (weight, create_loss(name, student_shapes, teacher_shapes,
                                            context=context, **spec.term_hparams(name)))
                 for name, weight in spec.terms}
        self.loss = WeightedLoss(terms).to(self.device)
        if spec.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model.to(self.device)
        self.extractor = models.FeatureExtractor(self.model, self.loss.student_tap_names)
        self.head = HeadedStudent.for_member(self)  # a loss that classifies the student (SimKD)
        if spec.compile:  # the fast path: hook-free parts compiled, the taps' hooks eager
            compile_model(self.model, self.device)
        params = [p for p in self.model.parameters() if p.requires_grad]
        params += list(self.loss.trainable_parameters())
        recipe = spec.recipe
        # foreach: one multi-tensor kernel per update instead of a Python loop over parameters;
        # the same element-wise arithmetic, bit for bit (tests/test_engine_golden.py).
        self.optimizer = torch.optim.SGD(params, lr=spec.lr, momentum=recipe.momentum,
                                         weight_decay=recipe.weight_decay,
                                         nesterov=recipe.nesterov, foreach=True)
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(
            self.optimizer, milestones=list(recipe.milestones), gamma=recipe.gamma)
        self.stage = PretrainStage.for_member(self)  # AB/FT/FSP pre-training, else None
        self.rng_cpu = torch.get_rng_state()
        self.rng_cuda = self._cuda_rng()
        self.epoch = 0  # epochs completed
        self.history: list[dict[str, float]] = []
        self.wall_time = 0.0
        self.failed: Optional[str] = None
        self.pruned = False  # stopped early on purpose (an Optuna pruner's decision)
        self.logged_through = 0  # the last epoch already in MLflow (see Cohort.run)
        self.run_id: Optional[str] = env.run_ids.get(spec.config_hash)
        self._reset_stats()

    # ----- RNG: every member draws from its own stream -----
    def _cuda_rng(self) -> Optional[torch.Tensor]:
        if self.device.type == "cuda":
            return torch.cuda.get_rng_state(self.device)
        return None

    @contextlib.contextmanager
    def own_rng(self) -> Iterator[None]:
        saved_cpu, saved_cuda = torch.get_rng_state(), self._cuda_rng()
        torch.set_rng_state(self.rng_cpu)
        if self.rng_cuda is not None:
            torch.cuda.set_rng_state(self.rng_cuda, self.device)
        try:
            yield
        finally:
            self.rng_cpu, self.rng_cuda = torch.get_rng_state(), self._cuda_rng()
            torch.set_rng_state(saved_cpu)
            if saved_cuda is not None:
                torch.cuda.set_rng_state(saved_cuda, self.device)

    # ----- training -----
    def _reset_stats(self) -> None:
        self.term_sums: dict[str, torch.Tensor] = {}
        self.correct = torch.zeros((), dtype=torch.long, device=self.device)
        self.seen = 0
        self.batches = 0

    def train_mode(self) -> None:
        self.model.train()
        self.loss.train()

    def step(self, images: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor,
             teacher_feats: dict[str, torch.Tensor]) -> None:
        spec = self.spec
        with self.own_rng():
            with autocast_for(self.device, spec.amp):
                feats = self.extractor(images)
                total, parts = self.loss(feats, teacher_feats, labels=labels, indices=indices)
            self.optimizer.zero_grad(set_to_none=True)
            total.backward()
            self.optimizer.step()
        for name, value in {"total": total.detach(), **parts}.items():
            value = value.detach().float()
            self.term_sums[name] = self.term_sums.get(name, 0) + value
        logits = feats["logits"] if self.head is None else self.head.train_logits()
        self.correct += (logits.detach().argmax(1) == labels).sum()
        self.seen += labels.numel()
        self.batches += 1

    def end_epoch(self, eval_loaders: dict[str, Any], images_per_s: float) -> dict[str, float]:
        """Step the schedule, evaluate, and return this epoch's metrics."""
        lr = self.optimizer.param_groups[0]["lr"]
        means = {name: float(v) / max(self.batches, 1) for name, v in self.term_sums.items()}
        bad = [n for n, v in means.items() if not math.isfinite(v)]
        if bad:
            raise NonFiniteLoss(f"non-finite loss ({', '.join(bad)} = "
                                f"{means[bad[0]]}) in epoch {self.epoch + 1}")
        metrics = {f"loss/{mlflow_name(name)}": v for name, v in means.items()}
        metrics["lr"] = lr
        metrics["train_acc"] = 100.0 * int(self.correct) / max(self.seen, 1)
        metrics["images_per_s"] = images_per_s
        self.scheduler.step()
        for split, loader in eval_loaders.items():
            top1, top5 = topk_accuracy(self.evaluated(), loader, self.device, self.spec.amp,
                                       self.spec.channels_last)
            metrics[f"{split}_acc"], metrics[f"{split}_top5"] = top1, top5
        self.epoch += 1
        self.history.append(metrics)
        self._reset_stats()
        return metrics

    def evaluated(self) -> nn.Module:
        """What is evaluated: the student, or the student through its loss's head (SimKD)."""
        return self.model if self.head is None else self.head

    # ----- results -----
    def summary(self) -> dict[str, float]:
        tests = [h["test_acc"] for h in self.history if "test_acc" in h]
        best = max(range(len(tests)), key=lambda i: tests[i]) if tests else -1
        top5 = self.history[-1].get("test_top5", float("nan")) if self.history else float("nan")
        return {"test_acc_last": tests[-1] if tests else float("nan"), "test_top5_last": top5,
                "test_acc_best": tests[best] if tests else float("nan"),
                "best_epoch": best + 1, "wall_time_s": self.wall_time}

    # ----- checkpoints -----
    def checkpoint_path(self) -> Path:
        return Store(self.env.store).checkpoint(self.spec.config_hash)

    def state(self) -> dict[str, Any]:
        return {
            "config_hash": self.spec.config_hash, "epoch": self.epoch, "run_id": self.run_id,
            "model": self.model.state_dict(), "loss": self.loss.state_dict(),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "rng_cpu": self.rng_cpu, "rng_cuda": self.rng_cuda, "history": self.history,
            "wall_time": self.wall_time,
            "stage": self.stage.state_dict() if self.stage is not None else None,
        }

    def save(self) -> None:
        save_checkpoint(self.checkpoint_path(), self.state(), keep_previous=True)

    def try_resume(self) -> bool:
        """Restore from this run's checkpoint if one exists; True when resumed."""
        state = load_checkpoint(self.checkpoint_path(), map_location=self.device)
        if state is None or state.get("config_hash") != self.spec.config_hash:
            return False
        self.model.load_state_dict(state["model"])
        self.loss.load_state_dict(state["loss"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.rng_cpu = state["rng_cpu"].cpu()
        if state.get("rng_cuda") is not None and self.device.type == "cuda":
            self.rng_cuda = state["rng_cuda"].cpu()
        self.epoch = int(state["epoch"])
        self.history = list(state["history"])
        self.wall_time = float(state["wall_time"])
        self.run_id = self.run_id or state.get("run_id")
        if self.stage is not None and state.get("stage") is not None:
            self.stage.load_state_dict(state["stage"])
        return True

    def close(self) -> None:
        self.extractor.remove()


class Cohort:
    """Several members sharing one data stream and (optionally) one teacher forward."""

    def __init__(self, specs: list[RunSpec], env: RunEnv,
                 on_epoch: Optional[Callable[["Member", dict], None]] = None,
                 data=None, teacher: Optional[nn.Module] = None):
        """``data`` and ``teacher`` default to the run's data set and the stored teacher;
        ``kdbench perf`` passes synthetic data and a randomly initialised teacher instead."""
        self.specs = specs
        self.env = env
        self.on_epoch = on_epoch
        self.device = env.device
        first = specs[0]
        self.recipe = first.recipe
        self.data = data if data is not None else self._load_data(first)
        self.teacher = None
        self.teacher_extractor = None
        teacher_shapes: dict[str, tuple] = {}
        if first.teacher is not None:
            self.teacher, teacher_shapes = self._prepare_teacher(first, teacher)
        self.members: list[Member] = []
        self.failed: list[RunResult] = []
        for spec in specs:
            try:
                self.members.append(Member(spec, self.data, teacher_shapes, env,
                                           teacher=self.teacher))
            except Exception as err:  # a broken config fails its run, not the cohort
                self.failed.append(RunResult(spec, "FAILED", reason=_reason(err),
                                             run_id=env.run_ids.get(spec.config_hash)))
        if self.teacher is not None:
            import models

            taps = sorted({t for m in self.members for t in m.loss.teacher_tap_names})
            self.teacher_taps = taps
            self.teacher_extractor = models.FeatureExtractor(self.teacher, taps)
            if first.compile:  # after the taps' hooks: they stay outside the compiled graphs
                compile_model(self.teacher, self.device)

    # ----- setup -----
    def _load_data(self, spec: RunSpec):
        from benchmark.data import load_splits

        return load_splits(spec.dataset, self.env.data_dir, val_fraction=spec.val_fraction,
                           split_seed=spec.split_seed, download=self.env.download,
                           train_fraction=spec.train_fraction)

    def _prepare_teacher(self, spec: RunSpec, teacher: Optional[nn.Module]):
        import models
        from benchmark.teachers import TeacherStore, untrained_teacher

        info = self.data.info
        if teacher is None and spec.teacher_init == "random":  # the random-teacher control
            teacher = untrained_teacher(spec.teacher_spec(), info.num_classes, info.in_chans)
        if teacher is None:
            teacher, _ = TeacherStore(self.env.store).load(spec.teacher_spec(), info.num_classes,
                                                           info.in_chans, self.device)
        teacher = teacher.to(self.device).eval().requires_grad_(False)
        if spec.channels_last:
            teacher = teacher.to(memory_format=torch.channels_last)
        shapes = {name: tuple(t.shape) for name, t in models.tap_info(
            teacher, input_size=(info.in_chans, info.image_size, info.image_size)).items()}
        return teacher, shapes

    def _loaders(self):
        from benchmark.data import Augment, make_loader

        first, info = self.specs[0], self.data.info
        recipe_aug = self.recipe.augment
        augment = (Augment(crop_padding=recipe_aug.crop_padding, flip=recipe_aug.flip)
                   if recipe_aug is not None else None)
        train = make_loader(self.data.train, info, self.recipe.batch_size, train=True,
                            seed=first.seed, device=self.device, augment=augment)
        splits = {"val": self.data.val, "test": self.data.test}
        evals = {name: make_loader(split, info, self.env.eval_batch_size, train=False, seed=0,
                                   device=self.device)
                 for name, split in splits.items()
                 if split is not None and name in self.env.eval_splits}
        return train, evals

    # ----- the loop -----
    def batches(self, loader) -> Iterator[tuple[Any, torch.Tensor, dict[str, torch.Tensor]]]:
        """``(batch, images in the run's memory format, teacher features)`` for each batch: one
        teacher forward shared by every member (main training and pre-training stages)."""
        for batch in loader:
            images = batch.images
            if self.specs[0].channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            yield batch, images, self.teacher_features(images)

    def teacher_features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.teacher_extractor is None:
            return {}
        # no_grad, not inference_mode: its outputs are ordinary tensors that losses may save for
        # backward, so no copy of every tapped feature per step (the same kernels, bit for bit).
        with torch.no_grad(), autocast_for(self.device, self.specs[0].amp):
            feats = self.teacher_extractor(images)
        return {name: feats[name] for name in self.teacher_taps}

    def run(self) -> list[RunResult]:
        """Train every member to the recipe's last epoch; returns one result per spec."""
        for member in self.members:
            resumed = member.try_resume()
            self._note_logged_epochs(member)
            if resumed:
                self._record_resume(member)
        train_loader, eval_loaders = self._loaders()
        run_pretraining(self, train_loader)  # losses' pre-training stages (benchmark/stages.py)
        epochs = self.recipe.epochs
        start = min((m.epoch for m in self.members), default=epochs)
        bar = _progress(self.env.progress, total=epochs, initial=start,
                        desc=f"{self.specs[0].dataset} seed {self.specs[0].seed}")
        for epoch in range(start, epochs):
            active = [m for m in self.members
                      if m.failed is None and not m.pruned and m.epoch == epoch]
            if not active:
                continue
            rate = self._train_epoch(epoch, active, train_loader)
            for member in active:
                self._finish_epoch(member, eval_loaders, rate)
            bar.set_postfix(img_s=f"{rate:,.0f}", runs=len(active))
            bar.update(1)
        bar.close()
        return self.failed + [self._result(m) for m in self.members]

    def _note_logged_epochs(self, member: Member) -> None:
        """How far the member's MLflow run is already logged: a run that restarts behind it (its
        last checkpoint was unreadable, so it resumed one generation back or from scratch)
        retrains those epochs to the same numbers and does not log them twice."""
        tracker = self.env.tracker
        if tracker is not None and member.run_id:
            member.logged_through = tracker.last_metric_step(member.run_id, "train_acc")

    def _record_resume(self, member: Member) -> None:
        """Tag the run with the epoch it resumed at, and log the checkpoint's epoch if the process
        died between saving and logging it (each epoch is logged exactly once)."""
        tracker = self.env.tracker
        if tracker is None or not member.run_id or not member.history:
            return
        tracker.set_tags(member.run_id, {"kdbench.resumed_at_epoch": str(member.epoch)})
        if member.logged_through < member.epoch:
            tracker.log_metrics(member.run_id, member.history[-1], step=member.epoch)
            member.logged_through = member.epoch

    def _train_epoch(self, epoch: int, active: list[Member], loader) -> float:
        loader.set_epoch(epoch)
        for member in active:
            member.train_mode()
            member.loss.set_epoch(epoch)  # schedules (DKD's, ReviewKD's warm-up)
        start = time.perf_counter()
        images_seen = 0
        streams = self._member_streams(len(active))
        for batch, images, teacher_feats in self.batches(loader):
            self._step_members(active, streams, batch, images, teacher_feats)
            images_seen += batch.labels.numel()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        elapsed = time.perf_counter() - start
        for member in active:
            member.wall_time += elapsed
        return images_seen / max(elapsed, 1e-9)

    def _member_streams(self, count: int) -> list[Optional["torch.cuda.Stream"]]:
        """CUDA with several members: one stream each, kept for the cohort's life, so that the
        members' steps of a batch overlap on the GPU. Otherwise ``None`` for each: the steps run
        one after the other on the current stream."""
        if self.device.type != "cuda" or not self.env.member_streams or count < 2:
            return [None] * count
        streams = getattr(self, "_streams", [])
        while len(streams) < count:
            streams.append(torch.cuda.Stream(self.device))
        self._streams = streams
        return streams[:count]

    def _step_members(self, active: list[Member], streams, batch, images,
                      teacher_feats: dict[str, torch.Tensor]) -> None:
        """One batch for every active member. On member streams each step waits for the batch
        and the shared teacher forward (queued on the current stream), and the current stream
        waits for every step before the next batch: tensors shared across streams are only
        freed, and their memory reused, after the steps that read them (no host sync)."""
        producer = (torch.cuda.current_stream(self.device)
                    if streams and streams[0] is not None else None)
        for member, stream in zip(active, streams):
            if member.failed is not None:
                continue
            with _on_stream(stream, producer):
                try:
                    member.step(images, batch.labels, batch.indices, teacher_feats)
                except Exception as err:
                    member.failed = _reason(err)
        if producer is not None:
            for stream in streams:
                producer.wait_stream(stream)

    def _finish_epoch(self, member: Member, eval_loaders, rate: float) -> None:
        if member.failed is not None:
            return
        try:
            metrics = member.end_epoch(eval_loaders, rate)
            metrics.update(self._agreement(member, eval_loaders))  # last epoch: in the history
        except Exception as err:
            member.failed = _reason(err)
            return
        member.save()  # checkpoint first: a kill before the log is repaired on resume
        if self.env.tracker is not None and member.run_id \
                and member.epoch > member.logged_through:
            self.env.tracker.log_metrics(member.run_id, metrics, step=member.epoch)
            member.logged_through = member.epoch
        if self.on_epoch is not None and self.on_epoch(member, metrics) == "prune":
            member.pruned = True

    def _agreement(self, member: Member, eval_loaders) -> dict[str, float]:
        """Teacher-student agreement and KL on the test set after the last epoch
        (:mod:`benchmark.agreement`); nothing for teachers, other epochs, or without test."""
        if self.teacher is None or "test" not in eval_loaders \
                or member.epoch != self.recipe.epochs:
            return {}
        if getattr(self, "_teacher_logits", None) is None:
            from benchmark.agreement import TeacherLogits

            self._teacher_logits = TeacherLogits(self.teacher, self.device, self.specs[0].amp,
                                                 self.specs[0].channels_last)
        return self._teacher_logits.metrics(member.evaluated(), eval_loaders["test"])

    def _result(self, member: Member) -> RunResult:
        member.close()
        if member.failed is not None:
            return RunResult(member.spec, "FAILED", reason=member.failed, run_id=member.run_id,
                             wall_time_s=member.wall_time)
        summary = member.summary()
        if member.pruned:
            return RunResult(member.spec, "PRUNED", run_id=member.run_id, **summary)
        weights = self._save_weights(member, summary["test_acc_last"])
        return RunResult(member.spec, "FINISHED", run_id=member.run_id, weights_path=weights,
                         **summary)

    def _save_weights(self, member: Member, test_acc: float) -> str:
        from safetensors.torch import save

        from benchmark.checkpoint import atomic_write_bytes
        from benchmark.teachers import TeacherStore

        spec = member.spec
        model = member.model.to(memory_format=torch.contiguous_format)
        if spec.role == "teacher":
            store = TeacherStore(self.env.store)
            store.save(spec, model, test_acc, run_id=member.run_id)
            return str(store.weights_path(spec))
        path = Store(self.env.store).student_weights(spec.config_hash)
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        if member.head is not None:  # SimKD: the evaluated head rides with the weights
            state.update(member.head.saved_state())
        atomic_write_bytes(path, save(state))
        return str(path)


@contextlib.contextmanager
def _on_stream(stream: Optional["torch.cuda.Stream"], producer) -> Iterator[None]:
    """Run the block on ``stream`` after the work queued so far on ``producer``; ``None``: on
    the current stream, as is."""
    if stream is None:
        yield
        return
    stream.wait_stream(producer)
    with torch.cuda.stream(stream):
        yield


def _reason(err: BaseException) -> str:
    """One line for MLflow's failure_reason tag, with where it happened."""
    frames = traceback.extract_tb(err.__traceback__)
    where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    return f"{type(err).__name__}: {err}{where}"


class _NoBar:
    def set_postfix(self, **_):
        pass

    def update(self, _n=1):
        pass

    def close(self):
        pass


def _progress(enabled: bool, **kwargs):
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(unit="epoch", leave=False, dynamic_ncols=True, **kwargs)


def train_cohort(specs: list[RunSpec], env: RunEnv,
                 on_epoch: Optional[Callable[[Member, dict], None]] = None) -> list[RunResult]:
    """Train ``specs`` (which must share a cohort key) together; see :class:`Cohort`."""
    return Cohort(specs, env, on_epoch=on_epoch).run()
