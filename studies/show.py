"""``kdbench studies show``: every study in a storage, its budget, counts and best parameters.

Reads the study user attributes written by ``kdbench tune`` (loss, pair, schedule), so the
table shows whether the losses were tuned with the same budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from optuna.trial import TrialState


@dataclass
class StudyRow:
    name: str
    loss: str
    pair: str
    budget: str
    epochs: str
    counts: str
    best_value: Optional[float]
    best_params: dict


def load_studies(storage_url: Optional[str], name: Optional[str] = None) -> list:
    """The studies in the storage (only ``name`` when given)."""
    import optuna

    from benchmark.errors import user_error
    from studies.storage import open_storage, public_url, storage_url as resolve

    storage = open_storage(storage_url)
    names = optuna.get_all_study_names(storage=storage)
    if name is not None:
        if name not in names:
            raise user_error(f"no study named '{name}' in {public_url(resolve(storage_url))}",
                             "--study-name", "choose one of: " + (", ".join(names) or
                                                                  "(the storage is empty)"))
        names = [name]
    return [optuna.load_study(study_name=n, storage=storage) for n in sorted(names)]


def study_row(study) -> StudyRow:
    trials = study.get_trials(deepcopy=False)
    count = {s: sum(t.state == s for t in trials)
             for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL,
                       TrialState.RUNNING)}
    attrs = study.user_attrs
    has_best = count[TrialState.COMPLETE] > 0
    return StudyRow(
        name=study.study_name, loss=str(attrs.get("loss", "?")),
        pair=f"{attrs.get('teacher', '?')}->{attrs.get('student', '?')}",
        budget=str(attrs.get("trials", "?")), epochs=str(attrs.get("epochs", "?")),
        counts="/".join(str(count[s]) for s in count),
        best_value=study.best_value if has_best else None,
        best_params=dict(study.best_params) if has_best else {})


def format_table(rows: list[StudyRow]) -> str:
    from studies.report import format_params

    header = ["study", "loss", "pair", "budget", "epochs", "done/pruned/fail/run", "best val",
              "best params"]
    body = [[r.name, r.loss, r.pair, r.budget, r.epochs, r.counts,
             f"{r.best_value:.2f}" if r.best_value is not None else "-",
             format_params(r.best_params)] for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip()
             for line in [header, ["-" * w for w in widths], *body]]
    return "\n".join(lines)
