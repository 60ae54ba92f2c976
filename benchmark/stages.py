"""Pre-training stages: losses trained on their own objective before the main training.

AB, FT and FSP (PROTOCOL §3, the CRD code's ``init``) declare ``pretrain_epochs`` > 0. For a
member with such a term, :func:`run_pretraining` trains that many epochs before the member's
first main epoch:

- data: the cohort's training stream, stage epoch k reading loader epoch -(k + 1) (its own
  deterministic stream; main epoch e reads e), the teacher forward shared by the cohort;
- objective: the term's ``pretrain_loss`` (unweighted), through a fresh SGD over its
  ``pretrain_parameters(student)`` at ``pretrain_lr`` with the recipe's momentum and weight
  decay, no schedule (as published); the main optimizer and schedule are untouched;
- after each stage epoch the member checkpoints (the stage's progress, optimizer and history
  ride in the member's checkpoint under ``"stage"``), then logs ``pretrain/<term>`` (the
  epoch's mean loss) at step k + 1 to its MLflow run; a run killed in the stage resumes at
  its last stage epoch and logs a checkpointed epoch the crash kept from MLflow, so each stage
  epoch is logged exactly once.

The stage runs inside the member's own RNG, like its main epochs, so a resumed run equals an
uninterrupted one.
"""

from __future__ import annotations

import time
from typing import Any, Optional

import torch

from benchmark.errors import user_error

METRIC_PREFIX = "pretrain/"


def stage_epoch_of_loader(k: int) -> int:
    """The loader epoch that stage epoch ``k`` (0-based) reads: -(k + 1)."""
    return -(k + 1)


class PretrainStage:
    """One member's pre-training stage: its term, optimizer, progress and per-epoch history."""

    def __init__(self, member, name: str, term):
        self.member, self.name, self.term = member, name, term
        self.epochs = term.pretrain_epochs()
        self.epoch = 0  # stage epochs completed
        self.history: list[dict[str, float]] = []
        self.finished = False
        recipe = member.spec.recipe
        params = list(dict.fromkeys(term.pretrain_parameters(member.model)))
        self.optimizer = torch.optim.SGD(
            params, lr=term.pretrain_lr(member.spec.lr, member.spec.student),
            momentum=recipe.momentum, weight_decay=recipe.weight_decay)
        self._reset()

    @classmethod
    def for_member(cls, member) -> Optional["PretrainStage"]:
        """The stage of ``member``'s objective, or None when no term declares one."""
        staged = member.loss.staged_terms()
        if not staged:
            return None
        if len(staged) > 1:
            raise user_error(
                f"Run '{member.spec.loss}' combines terms with pre-training stages "
                f"({', '.join(staged)}); one stage per run is supported",
                f"loss label '{member.spec.loss}'", "Use one staged loss (ab, ft, fsp) per label")
        name, term = next(iter(staged.items()))
        return cls(member, name, term)

    @property
    def done(self) -> bool:
        return self.epoch >= self.epochs

    def _reset(self) -> None:
        self.loss_sum = torch.zeros((), dtype=torch.float64)
        self.batches = 0

    # ----- training -----
    def begin_epoch(self) -> None:
        self.member.loss.train()
        self.term.begin_pretrain(self.member.model)

    def step(self, images, labels, indices, teacher_feats) -> None:
        from benchmark.engine import autocast_for

        member = self.member
        with member.own_rng():
            with autocast_for(member.device, member.spec.amp):
                feats = member.extractor(images)
                value = self.term.pretrain_loss(feats, teacher_feats, labels=labels,
                                                indices=indices)
            self.optimizer.zero_grad(set_to_none=True)
            value.backward()
            self.optimizer.step()
        self.loss_sum += value.detach().double().cpu()
        self.batches += 1

    def end_epoch(self) -> dict[str, float]:
        mean = float(self.loss_sum) / max(self.batches, 1)
        if mean != mean or mean in (float("inf"), float("-inf")):
            from benchmark.engine import NonFiniteLoss

            raise NonFiniteLoss(f"non-finite pre-training loss ({self.name} = {mean}) in stage "
                                f"epoch {self.epoch + 1}")
        self.epoch += 1
        metrics = {f"{METRIC_PREFIX}{self.name}": mean}
        self.history.append(metrics)
        self._reset()
        if self.done:
            self.finish()
        return metrics

    def finish(self) -> None:
        """Leave the stage: the term freezes what it trained; the member's main grads reset."""
        if not self.finished:
            self.term.end_pretrain()
            self.member.optimizer.zero_grad(set_to_none=True)
            self.finished = True

    # ----- checkpoints -----
    def state_dict(self) -> dict[str, Any]:
        return {"term": self.name, "epoch": self.epoch, "history": list(self.history),
                "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = int(state["epoch"])
        self.history = list(state["history"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.done:
            self.finish()


def run_pretraining(cohort, loader) -> None:
    """Train every member's unfinished stage, epoch by epoch, sharing the teacher forward."""
    staged = [m for m in cohort.members if m.stage is not None and m.failed is None]
    for member in staged:
        _log_missing_epoch(cohort, member)
    pending = [m for m in staged if not m.stage.done]
    if not pending:
        return
    for k in range(min(m.stage.epoch for m in pending), max(m.stage.epochs for m in pending)):
        active = [m for m in pending if m.failed is None and m.stage.epoch == k and not m.stage.done]
        if active:
            _stage_epoch(cohort, active, loader, k)


def _stage_epoch(cohort, active, loader, k: int) -> None:
    loader.set_epoch(stage_epoch_of_loader(k))
    for member in active:
        member.stage.begin_epoch()
    start = time.perf_counter()
    for batch, images, teacher_feats in cohort.batches(loader):
        for member in active:
            if member.failed is None:
                try:
                    member.stage.step(images, batch.labels, batch.indices, teacher_feats)
                except Exception as err:  # a broken stage fails its run, not the cohort
                    member.failed = _reason(err)
    elapsed = time.perf_counter() - start
    for member in active:
        member.wall_time += elapsed
        if member.failed is None:
            _finish_stage_epoch(cohort, member)


def _finish_stage_epoch(cohort, member) -> None:
    try:
        metrics = member.stage.end_epoch()
    except Exception as err:
        member.failed = _reason(err)
        return
    member.save()  # checkpoint first: a kill before the log is repaired on resume
    tracker = cohort.env.tracker
    if tracker is not None and member.run_id:
        tracker.log_metrics(member.run_id, metrics, step=member.stage.epoch)


def _log_missing_epoch(cohort, member) -> None:
    """After a resume: log the checkpointed stage epoch if the process died before logging."""
    tracker, stage = cohort.env.tracker, member.stage
    if tracker is None or not member.run_id or not stage.history:
        return
    key = f"{METRIC_PREFIX}{stage.name}"
    if not tracker.has_metric_step(member.run_id, key, stage.epoch):
        tracker.log_metrics(member.run_id, stage.history[-1], step=stage.epoch)


def _reason(err: BaseException) -> str:
    from benchmark.engine import _reason as engine_reason

    return engine_reason(err)
