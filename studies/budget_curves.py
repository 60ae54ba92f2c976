"""Tuning-budget curves: the expected best validation accuracy against the number of trials.

For a study with N completed trials of values v_(1) <= ... <= v_(N), the expected best of n
trials drawn from them (with replacement, the estimator of Dodge et al., EMNLP 2019, "Show Your
Work") is exact from the order statistics, no simulation:

    E[max of n] = sum_i v_(i) [ (i/N)^n - ((i-1)/N)^n ],   n = 1..N

(a minimising study uses the minimum, mirrored). ``kdbench studies show`` draws one curve per
study, labelled by loss and pair, in ``budget.png``, with a dotted line at the smallest budget
any study has, so it is visible whether the losses were compared at equal budgets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from optuna.study import StudyDirection
from optuna.trial import TrialState


def expected_best(values: Sequence[float], maximize: bool = True) -> np.ndarray:
    """Expected best of n draws, for n = 1..len(values) (exact, from order statistics)."""
    v = np.sort(np.asarray(values, dtype=float))
    if not maximize:
        return -expected_best(-v, maximize=True)
    count = len(v)
    if count == 0:
        return np.empty(0)
    n = np.arange(1, count + 1)[:, None]
    cdf = (np.arange(1, count + 1) / count)[None, :]
    weights = cdf ** n - (cdf - 1 / count) ** n  # P(max of n is the i-th smallest)
    return weights @ v


def study_curve(study) -> tuple[str, np.ndarray] | None:
    """(label, expected best per number of trials) of a study; None without completed trials."""
    values = [t.value for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
              if t.value is not None]
    if not values:
        return None
    attrs = study.user_attrs
    label = f"{attrs.get('loss', study.study_name)} ({attrs.get('teacher', '?')} -> " \
            f"{attrs.get('student', '?')})"
    return label, expected_best(values, study.direction == StudyDirection.MAXIMIZE)


def save_budget_curves(studies, out_dir: str | Path) -> Path | None:
    """Draw every study's curve in ``out_dir/budget.png``; None when no study has a trial."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = [c for c in (study_curve(s) for s in studies) if c is not None]
    if not curves:
        return None
    figure, axes = plt.subplots(figsize=(6.5, 4))
    for label, curve in curves:
        axes.plot(np.arange(1, len(curve) + 1), curve, marker="o", markersize=3, label=label)
    smallest = min(len(curve) for _, curve in curves)
    axes.axvline(smallest, color="#888", linestyle=":", linewidth=1)
    axes.set_xlabel("trials (budget)")
    axes.set_ylabel("expected best validation accuracy (%)")
    axes.set_title(f"Tuning budget: expected best of n trials (dotted: {smallest}, the "
                   "smallest budget)", fontsize=9)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    path = Path(out_dir) / "budget.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)
    return path


def budget_lines(studies) -> list[str]:
    """One line per study: its expected best at the smallest common budget and at its own."""
    curves = [c for c in (study_curve(s) for s in studies) if c is not None]
    if not curves:
        return []
    common = min(len(curve) for _, curve in curves)
    lines = [f"expected best validation accuracy at {common} trials (the smallest budget):"]
    lines += [f"  {label}: {curve[common - 1]:.2f} (at its {len(curve)} trials: {curve[-1]:.2f})"
              for label, curve in curves]
    return lines
