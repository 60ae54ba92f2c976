"""Pooled embeddings of a frozen network: the features the linear probe is trained on.

The ``embedding`` tap (the pooled vector the classifier reads, DESIGN.md "Models") is read with
:class:`models.FeatureExtractor` under ``torch.inference_mode`` with the network in eval mode, so
BatchNorm uses its running statistics and nothing in the network can change. Images are uint8
splits of the target, normalised with the *source* data set's mean/std (the statistics the
network was trained with) by a :class:`TensorLoader` without augmentation, in order.
:func:`assert_unchanged` verifies afterwards that every parameter and buffer (BatchNorm running
statistics included) is bit-for-bit what it was.
"""

from __future__ import annotations

from typing import Sequence

import torch

from benchmark.data import ArrayData, TensorLoader

EMBEDDING_TAP = "embedding"
EXTRACT_BATCH_SIZE = 256


def snapshot_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of every parameter and buffer."""
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


def assert_unchanged(model: torch.nn.Module, before: dict[str, torch.Tensor]) -> None:
    """Raise if any parameter or buffer differs from ``before`` (the backbone must stay frozen)."""
    after = model.state_dict()
    changed = [name for name, value in before.items() if not torch.equal(after[name], value)]
    if changed or set(after) != set(before):
        raise RuntimeError(f"The frozen network changed while extracting embeddings: {changed}")


def extract_embeddings(model: torch.nn.Module, data: ArrayData, mean: Sequence[float],
                       std: Sequence[float], *, batch_size: int = EXTRACT_BATCH_SIZE,
                       device: torch.device | str = "cpu") -> torch.Tensor:
    """float32 [N, D] pooled embeddings of ``data`` (in order), on the CPU."""
    from models import FeatureExtractor

    model.eval()
    before = snapshot_state(model)
    loader = TensorLoader(data, batch_size, shuffle=False, seed=0, augment=None, mean=mean,
                          std=std, device=device)
    chunks = []
    with torch.inference_mode(), FeatureExtractor(model, [EMBEDDING_TAP]) as extractor:
        for batch in loader:
            features = extractor(batch.images)[EMBEDDING_TAP]
            chunks.append(features.flatten(1).float().cpu())
    assert_unchanged(model, before)
    return torch.cat(chunks) if chunks else torch.empty(0, 0)
