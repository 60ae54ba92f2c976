"""The closing table of ``kdbench tune``: per study, trial counts, best value and parameters."""

from __future__ import annotations

import sys

from benchmark.tuned import DEFAULT_TUNED_WEIGHTS


def format_params(params: dict) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in sorted(params.items())) or "-"


def report_lines(reports, settings) -> list[str]:
    header = f"{'loss':10s} {'dataset':8s} {'student':20s} {'trials':>6s} {'here':>5s} " \
             f"{'complete/pruned/failed':>22s} {'best val':>8s}  best params"
    lines = [header, "-" * len(header)]
    for r in reports:
        states = (f"{r.states.get('COMPLETE', 0)}/{r.states.get('PRUNED', 0)}/"
                  f"{r.states.get('FAIL', 0)}")
        best = f"{r.best_value:.2f}" if r.best_value is not None else "-"
        note = "" if r.done else "  (still running elsewhere)"
        lines.append(f"{r.target.loss:10s} {r.target.dataset:8s} {r.target.student:20s} "
                     f"{r.counted:>6d} {r.trials_here:>5d} {states:>22s} {best:>8s}  "
                     f"{format_params(r.best_params)}{note}")
    path = settings.tuned_weights or DEFAULT_TUNED_WEIGHTS
    written = sum(r.entry is not None for r in reports)
    lines.append(f"Tuned weights of {written} stud(y/ies) written to {path}; reference them in a "
                 "suite with `weight: tuned`.")
    return lines


def print_reports(reports, settings, stream=None) -> None:
    print("\n".join(report_lines(reports, settings)), file=stream or sys.stdout)
