"""Validate a new loss against the SP baseline: register it, optionally tune its weight with the
same budget as SP, run it over a suite's pairs and seeds (reusing finished SP runs), and give a
verdict per pair from Welch's t-test over seeds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from benchmark.config import LossConfig, SuiteConfig
from benchmark.errors import UserError
from benchmark.plan import PlanOptions, RunSpec

BASELINE = "sp"


@dataclass
class PairVerdict:
    """The new loss against the baseline on one dataset/pair."""

    dataset: str
    teacher: str
    student: str
    baseline: list[float]
    candidate: list[float]
    p_value: Optional[float]
    verdict: str

    def line(self, name: str) -> str:
        from benchmark.leaderboard.stats import summarize

        b, c = summarize(self.baseline), summarize(self.candidate)
        p = f"{self.p_value:.3g}" if self.p_value is not None else "-"
        return (f"{self.dataset:9s} {self.teacher + ' -> ' + self.student:36s} "
                f"{BASELINE} {b.mean:6.2f} ± {_std(b.std)} (n={b.n})   {name} {c.mean:6.2f} ± "
                f"{_std(c.std)} (n={c.n})   diff {c.mean - b.mean:+6.2f}   p {p:>7s}   "
                f"{self.verdict}")


def _std(value: float) -> str:
    return "  n/a" if value != value else f"{value:5.2f}"


def validation_suite(suite: SuiteConfig, loss: str, tuned: bool) -> SuiteConfig:
    """The suite's pairs, seeds and recipe with two rows: the SP baseline and the new loss."""
    weight = "tuned" if tuned else "default"
    suffix = "@tuned" if tuned else ""
    rows = [LossConfig(label=f"{BASELINE}{suffix}", terms={"ce": 1.0, BASELINE: weight}),
            LossConfig(label=f"{loss}{suffix}", terms={"ce": 1.0, loss: weight})]
    return suite.model_copy(update={"losses": rows})


def verdicts(runs: list[RunSpec], tracker, suite: str, loss: str) -> list[PairVerdict]:
    """Welch's t-test per pair on the protocol metric of the plan's finished runs."""
    from benchmark.leaderboard.stats import welch_test

    by_hash = tracker.runs_by_hash(suite)
    results: dict[tuple, dict[str, list[float]]] = {}
    for spec in runs:
        finished = [r for r in by_hash.get(spec.config_hash, []) if r.info.status == "FINISHED"
                    and "test_acc_last" in r.data.metrics]
        if not finished:
            continue
        key = (spec.dataset, spec.teacher, spec.student)
        side = "baseline" if dict(spec.terms).get(BASELINE) is not None else "candidate"
        results.setdefault(key, {"baseline": [], "candidate": []})[side].append(
            finished[0].data.metrics["test_acc_last"])
    out = []
    for (dataset, teacher, student), values in results.items():
        comparison = welch_test(values["candidate"], values["baseline"])
        word = {"win": f"{loss} beats {BASELINE}", "loss": f"{loss} loses to {BASELINE}",
                "tie": "no significant difference"}.get(comparison.verdict, comparison.verdict)
        out.append(PairVerdict(dataset, teacher, student, values["baseline"],
                               values["candidate"], comparison.p_value, word))
    return out


def tune_both(suite_name: str, loss: str, trials: int, epochs: Optional[int],
              common_args: list[str]) -> None:
    """Tune SP and the new loss with the same budget (an existing study just continues)."""
    from benchmark.cli import main

    args = ["tune", suite_name, "--loss", f"{BASELINE},{loss}", "--trials", str(trials),
            *common_args]
    if epochs is not None:
        args += ["--epochs", str(epochs)]
    code = main(args)
    if code != 0:
        raise UserError(f"Tuning {BASELINE} and {loss} on suite '{suite_name}' failed (exit "
                        f"{code}); see the messages above. Fix that, or validate without "
                        "--tune-trials to use the default weights.")


def plan_options(epochs: Optional[int], seeds: Optional[list[int]],
                 only: Optional[str] = None) -> PlanOptions:
    from benchmark.plan import parse_only

    return PlanOptions(epochs=epochs, seeds=seeds, only=parse_only(only))
