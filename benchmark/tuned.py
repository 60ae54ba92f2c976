"""The tuned-weights file: loss weights chosen by ``kdbench tune``, with their provenance.

``kdbench tune`` writes one entry per (dataset, teacher, student, loss); a suite that says
``weight: tuned`` reads it back at plan time. The file is YAML::

    entries:
      - {dataset: digits, teacher: digits_cnn_large, student: digits_cnn_small, loss: sp,
         weight: 812.3, params: {}, study: kdbench-digits-sp, trials: 12, best_val_acc: 97.9}
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Optional

import yaml

from benchmark.errors import UserError

DEFAULT_TUNED_WEIGHTS = "tuned_weights.yaml"
KEY_FIELDS = ("dataset", "teacher", "student", "loss")


def read_tuned_weights(path: Optional[str | Path] = None) -> list[dict[str, Any]]:
    """All entries of the file (an empty list when it does not exist)."""
    path = Path(path or DEFAULT_TUNED_WEIGHTS)
    if not path.exists():
        return []
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise UserError(f"Tuned-weights file {path} is not valid YAML ({err}). Fix it, or delete "
                        "it and run `kdbench tune` again.") from None
    entries = data.get("entries", []) if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise UserError(f"Tuned-weights file {path} must hold a mapping with a list 'entries'. "
                        "Fix it, or delete it and run `kdbench tune` again.")
    return entries


def write_tuned_weight(entry: dict[str, Any], path: Optional[str | Path] = None) -> Path:
    """Add or replace the entry with the same key fields; the file is rewritten atomically."""
    missing = [k for k in (*KEY_FIELDS, "weight") if k not in entry]
    if missing:
        raise ValueError(f"tuned-weight entry lacks {missing}")
    path = Path(path or DEFAULT_TUNED_WEIGHTS)
    entries = [e for e in read_tuned_weights(path)
               if tuple(e.get(k) for k in KEY_FIELDS) != tuple(entry[k] for k in KEY_FIELDS)]
    entries.append(entry)
    entries.sort(key=lambda e: tuple(str(e.get(k)) for k in KEY_FIELDS))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        yaml.safe_dump({"entries": entries}, handle, sort_keys=False)
    os.replace(tmp, path)
    return path


def lookup_tuned(path: Optional[str | Path], *, dataset: str, teacher: str, student: str,
                 label: str, term: str) -> tuple[float, dict[str, Any]]:
    """The tuned weight of ``term`` in the row ``label`` and the term's tuned hyperparameters
    (from ``--space full``), or a :class:`UserError` saying how to get them.

    An entry tuned for the same label wins (``sp+kd`` tunes its ``sp`` term in the ``sp+kd``
    setting); otherwise an entry tuned for the term on its own (``loss: sp``) is used.
    """
    path = Path(path or DEFAULT_TUNED_WEIGHTS)
    pair = (dataset, teacher, student)
    entries = [e for e in read_tuned_weights(path)
               if (e.get("dataset"), e.get("teacher"), e.get("student")) == pair]
    for wanted in (label, term):
        for entry in entries:
            if entry.get("loss") != wanted:
                continue
            weights = entry.get("weights") or {entry.get("term", entry["loss"]): entry["weight"]}
            if term in weights:
                prefix = f"{term}."
                hparams = {k[len(prefix):]: v for k, v in (entry.get("params") or {}).items()
                           if k.startswith(prefix)}
                return float(weights[term]), hparams
    raise UserError(
        f"The suite asks for 'weight: tuned' for term '{term}' of loss '{label}' on {dataset} "
        f"{teacher} -> {student}, but {path} has no such entry. Run `kdbench tune --dataset "
        f"{dataset} --teacher {teacher} --student {student} --loss {label}` first, or give a "
        "number.")


def lookup_tuned_weight(path: Optional[str | Path], *, dataset: str, teacher: str, student: str,
                        loss: str) -> float:
    """The tuned weight of the single-method row ``loss`` (see :func:`lookup_tuned`)."""
    return lookup_tuned(path, dataset=dataset, teacher=teacher, student=student, label=loss,
                        term=loss)[0]
