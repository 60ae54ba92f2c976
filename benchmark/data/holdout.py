"""Seeded, class-stratified holdout: split indices into a kept part and a held-out part.

Used to hold the validation split out of the training set (seeded by ``split_seed``) and to
fix the digits test split (a constant seed). Each class gives up its share of the held-out
part (largest-remainder rounding), so the held-out part is as class-balanced as it can be and
its total size is ``round(fraction * N)``.
"""

from __future__ import annotations

import torch


def stratified_holdout(labels: torch.Tensor, fraction: float, seed: int
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(kept, held_out)`` sorted int64 index tensors partitioning ``range(len(labels))``."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    generator = torch.Generator().manual_seed(int(seed))
    classes, counts = torch.unique(labels, return_counts=True)
    quotas = _class_quotas(counts, fraction)
    held_out = []
    for cls, quota in zip(classes.tolist(), quotas):
        members = torch.nonzero(labels == cls).squeeze(1)
        order = torch.randperm(len(members), generator=generator)
        held_out.append(members[order[:quota]])
    held = torch.sort(torch.cat(held_out)).values if held_out else torch.empty(0, dtype=torch.long)
    keep_mask = torch.ones(len(labels), dtype=torch.bool)
    keep_mask[held] = False
    return torch.nonzero(keep_mask).squeeze(1), held


def _class_quotas(counts: torch.Tensor, fraction: float) -> list[int]:
    """Per-class held-out counts summing to round(fraction * total), by largest remainder."""
    total = int(counts.sum())
    target = int(round(fraction * total))
    if fraction > 0 and target == 0 and total > 1:
        target = 1
    exact = counts.double() * (target / max(total, 1))
    quotas = torch.floor(exact).long()
    remainder = exact - quotas.double()
    missing = target - int(quotas.sum())
    if missing > 0:
        # ties broken by class order (stable sort), so the result is deterministic
        order = torch.sort(-remainder, stable=True).indices[:missing]
        quotas[order] += 1
    return quotas.tolist()
