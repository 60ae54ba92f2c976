"""Import checkpoints saved by the public CRD benchmark code (HobbitLong/RepDistiller).

The zoo's CIFAR models use the published module names, so a published state dict loads with
strict key matching and gives the published model's logits. Usage::

    from models import load_published_checkpoint
    path = "save/models/resnet32x4_vanilla/ckpt_epoch_240.pth"
    teacher = load_published_checkpoint("resnet32x4", path)
    teacher.eval()

Accepted inputs: a path to a ``torch.save`` file holding either a dict with key ``model`` (the
CRD format: ``{'epoch': ..., 'model': state_dict, 'optimizer': ..., 'opt': Namespace}``) or a
bare state dict; or such an object already in memory. Files are read with
``torch.load(..., weights_only=True)`` (plus ``argparse.Namespace``, which CRD stores under
``opt``), mapped to CPU. A uniform ``module.`` prefix (``nn.DataParallel``) is stripped. Missing or
unexpected keys and shape mismatches raise ``UserError`` naming the first few keys; BatchNorm
``num_batches_tracked`` counters, which old PyTorch versions did not save, may be absent.
"""

from __future__ import annotations

import argparse
import os
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from benchmark.errors import user_error
from models.registry import create_model

SHOWN_KEYS = 3
PARALLEL_PREFIX = "module."
OPTIONAL_SUFFIX = "num_batches_tracked"


def load_published_checkpoint(name: str, path_or_state_dict, num_classes: int = 100) -> nn.Module:
    """Build zoo model ``name`` and load a CRD-code checkpoint into it (strict keys and shapes).

    ``path_or_state_dict``: a file path, a checkpoint dict with key ``model``, or a state dict.
    Returns the model in training mode, like :func:`models.create_model`; call ``.eval()`` to
    use it as a teacher. Raises ``UserError`` for an unreadable file or mismatching keys/shapes.
    """
    where = _describe_source(path_or_state_dict)
    checkpoint = _read_checkpoint(path_or_state_dict, where)
    state_dict = _strip_parallel_prefix(_extract_state_dict(checkpoint, where))
    model = create_model(name, num_classes=num_classes)
    expected = model.state_dict()
    _check_keys_and_shapes(expected, state_dict, model.kdbench_name, num_classes, where)
    completed = {**{k: v for k, v in expected.items() if k.endswith(OPTIONAL_SUFFIX)},
                 **state_dict}
    model.load_state_dict(completed, strict=True)
    return model


def _describe_source(source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return f"checkpoint file {os.fspath(source)}"
    return "in-memory checkpoint"


def _read_checkpoint(source, where: str):
    if not isinstance(source, (str, os.PathLike)):
        return source
    path = Path(source)
    if not path.is_file():
        raise user_error("Checkpoint file not found", where,
                         "Check the path; CRD saves teachers as save/models/<name>_.../*.pth")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise user_error(
            f"Cannot read the checkpoint with torch.load(weights_only=True): {first_line}",
            where,
            "Make sure the file is a complete torch.save file; if it holds arbitrary objects, "
            "re-save just the weights with torch.save({'model': model.state_dict()}, path)",
        ) from None


def _extract_state_dict(checkpoint, where: str) -> dict[str, torch.Tensor]:
    if isinstance(checkpoint, Mapping) and isinstance(checkpoint.get("model"), Mapping):
        checkpoint = checkpoint["model"]
    if not isinstance(checkpoint, Mapping) or not checkpoint:
        raise user_error(
            f"Expected a state dict or a dict with key 'model', got {type(checkpoint).__name__}",
            where, "Pass the CRD checkpoint (dict with 'model') or model.state_dict()")
    not_tensors = [key for key, value in checkpoint.items() if not isinstance(value, torch.Tensor)]
    if not_tensors:
        raise user_error(
            f"The state dict has non-tensor entries, e.g. {_first(not_tensors)}",
            where, "Pass the CRD checkpoint (dict with 'model') or model.state_dict()")
    return dict(checkpoint)


def _strip_parallel_prefix(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if all(key.startswith(PARALLEL_PREFIX) for key in state_dict):
        return {key[len(PARALLEL_PREFIX):]: value for key, value in state_dict.items()}
    return state_dict


def _check_keys_and_shapes(expected: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor],
                           name: str, num_classes: int, where: str) -> None:
    missing = [k for k in expected if k not in given and not k.endswith(OPTIONAL_SUFFIX)]
    unexpected = [k for k in given if k not in expected]
    mismatched = [f"{k} {tuple(given[k].shape)} vs {tuple(expected[k].shape)} expected"
                  for k in expected if k in given and given[k].shape != expected[k].shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s) {_first(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s) {_first(unexpected)}")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatch(es) {_first(mismatched)}")
    if problems:
        raise user_error(
            f"The checkpoint does not fit model '{name}' with num_classes={num_classes}: "
            + "; ".join(problems),
            where,
            "Pass the architecture name the checkpoint was trained with (CRD names such as "
            "resnet32x4, wrn_40_2, ResNet50, MobileNetV2 work) and its num_classes",
        )


def _first(items: list[str]) -> str:
    shown = ", ".join(items[:SHOWN_KEYS])
    return f"[{shown}{', ...' if len(items) > SHOWN_KEYS else ''}]"
