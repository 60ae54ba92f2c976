"""Contrastive representation distillation (Tian et al., ICLR 2020), PROTOCOL §3 CRD.

On the pooled ``embedding`` of both nets:

- heads: linear (with bias) + L2 normalisation to ``feat_dim`` = 128 on each side, both
  trained (the teacher backbone stays frozen);
- two memory banks (N x feat_dim buffers, N = training-set size), initialised uniformly in
  [-1/sqrt(feat_dim/3), +1/sqrt(feat_dim/3)]: ``memory_student`` holds student embeddings,
  ``memory_teacher`` teacher embeddings;
- for every sample, K negatives drawn *without replacement* from samples of *other classes*
  (:mod:`losses.negative_sampling`, vectorised), plus its own index as the positive;
- scores exp(<memory entry, anchor> / tau): the student anchor against the teacher bank and
  the teacher anchor against the student bank;
- per side a partition constant Z = mean(first batch's scores) * N, estimated on the first
  batch (buffers ``z_student`` / ``z_teacher``, -1 = not yet estimated) and then kept fixed;
- L = NCE(student side) + NCE(teacher side) (:func:`losses.functional.crd_nce`);
- after scoring, every bank entry of the batch becomes normalise(m * old + (1 - m) * new),
  m = ``momentum`` (0.5).

Device-agnostic: banks, Z and the sampler's tables are buffers and follow ``.to(device)``. The
negatives come from a ``torch.Generator`` reseeded every batch from two int64 buffers
(``sampler_seed``, ``sampler_step``), so a checkpoint (``state_dict``) resumes the exact
negative stream; :meth:`CRDLoss.get_rng_state` / :meth:`CRDLoss.set_rng_state` expose them.

Scoring. The published code gathers a b x (K+1) x feat_dim block of bank rows per side
(537 MB at b=64, K=16384). When N <= 8 (K+1) this module instead multiplies the anchors with the
whole bank (b x N scores) and picks the needed columns: the same numbers, 40x less memory
traffic. Larger N (ImageNet) uses the gather. ``scoring`` forces either.

Too few negatives. If K exceeds the number of samples outside the largest class, drawing K
distinct other-class negatives is impossible; the constructor raises ``UserError`` (the
published loader silently falls back to drawing with replacement).

Memory for N = 50,000, K = 16,384, feat_dim 128, batch 64 (float32; :func:`crd_memory_bytes`):
banks 2 x 25.6 MB = 51.2 MB (persistent, in the checkpoint); per batch: contrast indices
8.4 MB (int64), sampler keys 12.8 MB, dense scores and their gradients 2 x 2 x 12.8 MB, bank
snapshots kept for the backward pass 2 x 25.6 MB, and b x (K+1) probability tensors
(2 sides x ~4 live tensors x 4.2 MB = 34 MB): about 157 MB transient in all, against
~1.07 GB for the published gather of bank rows.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmark.errors import user_error
from losses import functional
from losses.negative_sampling import ClassAwareNegativeSampler
from losses.registry import EMBEDDING, DistillLoss, HParam, register_loss

DENSE_SCORING_MAX_RATIO = 8
SCORING_MODES = ("auto", "dense", "gather")
FLOAT_BYTES, INDEX_BYTES = 4, 8


def crd_memory_bytes(num_samples: int, num_negatives: int, batch_size: int,
                     feat_dim: int = 128) -> dict[str, int]:
    """Bytes CRD holds: the persistent banks and the main per-batch tensors (dense scoring)."""
    contrast = batch_size * (num_negatives + 1)
    return {
        "memory_banks": 2 * num_samples * feat_dim * FLOAT_BYTES,
        "contrast_indices": contrast * INDEX_BYTES,
        "sampler_keys": batch_size * num_samples * FLOAT_BYTES,
        "dense_scores_and_grads": 2 * 2 * batch_size * num_samples * FLOAT_BYTES,
        "bank_snapshots": 2 * num_samples * feat_dim * FLOAT_BYTES,
        "probabilities": 2 * 4 * contrast * FLOAT_BYTES,
        "published_gathered_rows": 2 * contrast * feat_dim * FLOAT_BYTES,
    }


def _mix_seed(seed: int, step: int) -> int:
    """A 63-bit seed for batch ``step`` of stream ``seed`` (splitmix64 finaliser)."""
    z = (seed * 0x9E3779B97F4A7C15 + step + 1) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return (z ^ (z >> 31)) & 0x7FFFFFFFFFFFFFFF


class Embed(nn.Module):
    """Linear map (with bias) followed by L2 normalisation."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(self.linear(x.flatten(1)), p=2, dim=1)


def contrast_scores(anchors: Tensor, bank: Tensor, contrast_idx: Tensor, tau: float,
                    dense: bool) -> Tensor:
    """exp(<bank[contrast_idx[i, k]], anchors[i]> / tau), shape b x (K+1).

    ``dense``: multiply with the whole bank (a snapshot, so later in-place bank updates do
    not disturb the backward pass) and pick columns; else gather the rows as published.
    """
    anchors = anchors.to(bank.dtype)
    with torch.autocast(bank.device.type, enabled=False):  # exp(x / 0.07) needs fp32
        if dense:
            snapshot = bank.clone() if anchors.requires_grad else bank
            dots = (anchors @ snapshot.t()).gather(1, contrast_idx)
        else:
            rows = bank.index_select(0, contrast_idx.reshape(-1)).view(*contrast_idx.shape, -1)
            dots = torch.bmm(rows, anchors.unsqueeze(2)).squeeze(2)
        return torch.exp(dots / tau)


@register_loss("crd")
class CRDLoss(DistillLoss):
    """CRD with memory banks, class-aware negatives and fixed Z; beta 0.8."""

    default_weight = 0.8
    hparams = {
        "tau": HParam(0.07, 0.02, 0.5, log=True),
        "K": HParam(16384, 256, 32768, log=True),
        "momentum": HParam(0.5, 0.0, 0.99, log=False),
        "feat_dim": HParam(128, 32, 512, log=True),
    }
    options = {"seed": None, "scoring": "auto"}
    needs_indices = True
    needs_context = True

    def __init__(self, student_taps, teacher_taps, context=None, **config):
        super().__init__(student_taps, teacher_taps, context, **config)
        self.tau = float(self.config["tau"])
        self.num_negatives = int(self.config["K"])
        self.momentum = float(self.config["momentum"])
        feat_dim = int(self.config["feat_dim"])
        self.num_samples = self._checked_num_samples()
        self.dense = self._use_dense_scoring(self.config["scoring"])
        self.embed_student = Embed(math.prod(self.use_student_tap(EMBEDDING)), feat_dim)
        self.embed_teacher = Embed(math.prod(self.use_teacher_tap(EMBEDDING)), feat_dim)
        self.sampler = ClassAwareNegativeSampler(self.context.train_labels,
                                                 self.context.num_classes)
        self._check_enough_negatives()
        bound = 1.0 / math.sqrt(feat_dim / 3.0)
        for side in ("student", "teacher"):
            bank = torch.rand(self.num_samples, feat_dim) * (2 * bound) - bound
            self.register_buffer(f"memory_{side}", bank)
            self.register_buffer(f"z_{side}", torch.tensor(-1.0))
        seed = self.config["seed"]
        if seed is None:
            seed = int(torch.randint(0, 2 ** 62, ()).item())
        self.register_buffer("sampler_seed", torch.tensor(int(seed), dtype=torch.long))
        self.register_buffer("sampler_step", torch.tensor(0, dtype=torch.long))
        self._generators: dict[str, torch.Generator] = {}

    # ----- construction checks -----
    def _checked_num_samples(self) -> int:
        labels = self.context.train_labels
        if labels.dim() != 1 or labels.numel() != self.context.num_samples:
            raise user_error(
                f"CRD's LossContext has num_samples={self.context.num_samples} but "
                f"train_labels of shape {tuple(labels.shape)}", "LossContext",
                "Pass the training split's labels, one per sample index the loader yields")
        return int(self.context.num_samples)

    def _use_dense_scoring(self, mode: Any) -> bool:
        if mode not in SCORING_MODES:
            raise user_error(f"CRD option scoring={mode!r} is not one of {SCORING_MODES}",
                             "crd scoring", "Use 'auto' (default), 'dense' or 'gather'")
        if mode == "auto":
            return self.num_samples <= DENSE_SCORING_MAX_RATIO * (self.num_negatives + 1)
        return mode == "dense"

    def _check_enough_negatives(self) -> None:
        pool, largest_class = self.sampler.smallest_pool()
        if not 1 <= self.num_negatives <= pool:
            raise user_error(
                f"CRD needs K={self.num_negatives} distinct negatives of other classes per "
                f"sample, but only {pool} training samples lie outside class {largest_class}",
                "crd hyperparameter K",
                f"Set K between 1 and {pool} for this data set (e.g. crd: {{K: {min(pool, 4096)}}})")

    # ----- sampler RNG -----
    def get_rng_state(self) -> Tensor:
        """(seed, step) of the negative sampler, as an int64 tensor of 2."""
        return torch.stack([self.sampler_seed, self.sampler_step]).cpu()

    def set_rng_state(self, state: Tensor) -> None:
        self.sampler_seed.fill_(int(state[0]))
        self.sampler_step.fill_(int(state[1]))

    def _next_generator(self, device: torch.device) -> torch.Generator:
        generator = self._generators.get(str(device))
        if generator is None:
            generator = self._generators[str(device)] = torch.Generator(device=device)
        generator.manual_seed(_mix_seed(int(self.sampler_seed), int(self.sampler_step)))
        self.sampler_step.add_(1)
        return generator

    # ----- forward -----
    def contrast_indices(self, indices: Tensor) -> Tensor:
        """b x (K+1): each sample's own index, then K negatives of other classes."""
        with torch.no_grad():
            generator = self._next_generator(indices.device)
            negatives = self.sampler.sample(indices, self.num_negatives, generator)
            return torch.cat([indices[:, None], negatives], dim=1)

    def forward(self, student_feats, teacher_feats, labels=None, indices=None):
        indices = self.require(indices, "sample indices").to(self.memory_student.device).long()
        contrast_idx = self.contrast_indices(indices)
        v_s = self.embed_student(student_feats[EMBEDDING])
        v_t = self.embed_teacher(teacher_feats[EMBEDDING])
        scores_s = contrast_scores(v_s, self.memory_teacher, contrast_idx, self.tau, self.dense)
        scores_t = contrast_scores(v_t, self.memory_student, contrast_idx, self.tau, self.dense)
        probs_s = scores_s / self._partition(self.z_student, scores_s)
        probs_t = scores_t / self._partition(self.z_teacher, scores_t)
        loss = (functional.crd_nce(probs_s, self.num_samples)
                + functional.crd_nce(probs_t, self.num_samples))
        self._update_bank(self.memory_student, indices, v_s)
        self._update_bank(self.memory_teacher, indices, v_t)
        return loss

    def _partition(self, z: Tensor, scores: Tensor) -> Tensor:
        """Z of one side: estimated from the first batch (mean score * N), then fixed."""
        if float(z) < 0:
            z.fill_(float(scores.detach().mean()) * self.num_samples)
        return z

    @torch.no_grad()
    def _update_bank(self, bank: Tensor, indices: Tensor, embeddings: Tensor) -> None:
        mixed = bank.index_select(0, indices) * self.momentum
        mixed += embeddings.detach().to(bank.dtype) * (1.0 - self.momentum)
        bank.index_copy_(0, indices, F.normalize(mixed, p=2, dim=1))
