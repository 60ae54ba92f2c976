"""Export a study's best weight to the tuned-weights file that suites read with ``weight: tuned``.

One entry per (dataset, teacher, student, loss label), written with
:func:`benchmark.tuned.write_tuned_weight` under a lock file (several ``kdbench tune`` processes
may finish at once). Provenance travels with the number: study name, storage (password masked),
trial counts, the best validation accuracy and trial, all best parameters, and the schedule.
For a composite label (``sp+kd``) the entry's ``loss`` is the label and ``term`` the tuned term.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from optuna.trial import TrialState

from benchmark.tuned import DEFAULT_TUNED_WEIGHTS, write_tuned_weight
from studies.storage import file_lock, public_url


def tuned_entry(study, target, storage_url: str) -> Optional[dict]:
    """The entry for the study's best trial; None while no trial has completed."""
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if not complete:
        return None
    best = study.best_trial
    term = target.terms[0]
    attrs = study.user_attrs
    entry = {
        "dataset": target.dataset, "teacher": target.teacher, "student": target.student,
        "loss": target.loss, "term": term, "weight": float(best.params[f"weight.{term}"]),
        "params": {k: _plain(v) for k, v in best.params.items()},
        "study": study.study_name, "storage": public_url(storage_url),
        "trials": sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
                      for t in trials),
        "complete": len(complete),
        "pruned": sum(t.state == TrialState.PRUNED for t in trials),
        "best_trial": best.number, "best_val_acc": round(float(best.value), 4),
        "epochs": attrs.get("epochs"), "recipe": attrs.get("recipe"),
        "val_fraction": attrs.get("val_fraction"), "train_seed": attrs.get("train_seed"),
        "space": attrs.get("space"), "budget": attrs.get("trials"),
    }
    if len(target.terms) > 1:
        entry["weights"] = {t: float(best.params[f"weight.{t}"]) for t in target.terms}
    return entry


def export_best(study, target, storage_url: str, path: Optional[str | Path] = None):
    """Write the study's best weight to ``path`` (default tuned_weights.yaml); returns the
    entry, or None when no trial has completed yet."""
    entry = tuned_entry(study, target, storage_url)
    if entry is None:
        return None
    path = Path(path or DEFAULT_TUNED_WEIGHTS)
    with file_lock(path):
        write_tuned_weight(entry, path)
    return entry


def _plain(value):
    return float(value) if isinstance(value, float) else value
