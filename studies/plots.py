"""Optuna's plots of a study saved as PNG images (matplotlib, Agg backend).

Per study: the optimisation history, and the parameter importances (fANOVA, seeded) when the
study has at least two completed trials and two parameters. With a single parameter there is
nothing to rank, so the slice plot (objective against the parameter) is saved instead.
"""

from __future__ import annotations

import re
from pathlib import Path

from optuna.trial import TrialState

MIN_COMPLETE_FOR_IMPORTANCE = 2


def safe_name(name: str) -> str:
    """A study name usable as a folder name."""
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", name)


def save_study_plots(study, out_dir: str | Path) -> tuple[list[Path], list[str]]:
    """Write the plots of ``study`` under ``out_dir/<study>``; returns (files, notes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.importance import FanovaImportanceEvaluator
    from optuna.visualization import matplotlib as ovm

    folder = Path(out_dir) / safe_name(study.study_name)
    folder.mkdir(parents=True, exist_ok=True)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return [], [f"{study.study_name}: no completed trial yet, no plots"]
    files, notes = [], []
    files.append(_save(ovm.plot_optimization_history(study), folder / "history.png", plt))
    params = sorted({p for t in complete for p in t.params})
    if len(complete) >= MIN_COMPLETE_FOR_IMPORTANCE and len(params) >= 2:
        evaluator = FanovaImportanceEvaluator(seed=0)
        files.append(_save(ovm.plot_param_importances(study, evaluator=evaluator),
                           folder / "importance.png", plt))
    else:
        notes.append(f"{study.study_name}: parameter importance needs >= "
                     f"{MIN_COMPLETE_FOR_IMPORTANCE} completed trials and >= 2 parameters "
                     f"(has {len(complete)} and {len(params)}); saved the slice plot instead")
        files.append(_save(ovm.plot_slice(study), folder / "slice.png", plt))
    return files, notes


def _save(axes, path: Path, plt) -> Path:
    figure = _figure_of(axes)
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)
    return path


def _figure_of(axes):
    import numpy as np

    first = axes.flat[0] if isinstance(axes, np.ndarray) else axes
    return first.get_figure()
