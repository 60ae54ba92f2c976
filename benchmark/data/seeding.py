"""Per-epoch random streams: everything random in epoch e of a loader depends only on (seed, e).

A fresh CPU ``torch.Generator`` is seeded from a hash of (seed, epoch, stream), so epochs get
unrelated streams, a resumed run reproduces the stream of any epoch, and results do not depend
on the device the batches end up on.
"""

from __future__ import annotations

import hashlib

import torch


def derived_seed(seed: int, *parts: object) -> int:
    """A 63-bit seed from ``seed`` and any labels (epoch, stream name, sample index)."""
    text = "/".join(str(p) for p in (int(seed), *parts))
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def epoch_generator(seed: int, epoch: int, stream: str = "loader") -> torch.Generator:
    """A CPU generator for ``stream`` in ``epoch`` of a loader seeded with ``seed``."""
    return torch.Generator().manual_seed(derived_seed(seed, stream, epoch))
