"""Validate a new loss against the SP baseline: register it, optionally tune its weight with the
same budget as SP, run it over a suite's pairs and seeds (reusing finished SP runs), and give a
verdict per pair from Welch's t-test over seeds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from benchmark.config import LossConfig, SuiteConfig
from benchmark.errors import UserError
from benchmark.plan import PlanOptions, RunSpec

if TYPE_CHECKING:
    from benchmark.runner import RunOptions
    from studies.tuner import StudyReport

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

    from benchmark.records import Metric, select

    counted = select(tracker.records(suite)).counted  # the rule the leaderboard and probe use
    results: dict[tuple, dict[str, list[float]]] = {}
    for spec in runs:
        record = counted.get(spec.config_hash)
        if record is None:
            continue
        key = (spec.dataset, spec.teacher, spec.student)
        side = "baseline" if dict(spec.terms).get(BASELINE) is not None else "candidate"
        results.setdefault(key, {"baseline": [], "candidate": []})[side].append(
            record.metric(Metric.TEST_ACC_LAST))
    out = []
    for (dataset, teacher, student), values in results.items():
        comparison = welch_test(values["candidate"], values["baseline"])
        word = {"win": f"{loss} beats {BASELINE}", "loss": f"{loss} loses to {BASELINE}",
                "tie": "no significant difference"}.get(comparison.verdict, comparison.verdict)
        out.append(PairVerdict(dataset, teacher, student, values["baseline"],
                               values["candidate"], comparison.p_value, word))
    return out


def tune_both(suite: SuiteConfig, loss: str, trials: int, epochs: Optional[int],
              options: RunOptions) -> list[StudyReport]:
    """Tune SP and the new loss with the same budget, exactly as ``kdbench tune SUITE --loss
    sp,LOSS --trials N [--epochs E]`` would (same study names, budgets and tuned-weights file;
    an existing study just continues), so the suite's ``weight: tuned`` rows find both."""
    from benchmark.errors import user_error
    from studies.targets import TargetFilter
    from studies.tuner import TuneSettings, all_tuned, tune_losses

    if trials < 1:
        raise user_error(f"--tune-trials must be at least 1, got {trials}", "--tune-trials",
                         "pass the number of trials each study should run, e.g. "
                         "--tune-trials 12, or leave it out to use the default weights")
    reports = tune_losses(suite, TargetFilter(losses=[BASELINE, loss]),
                          TuneSettings(trials=trials), options, epochs=epochs)
    if not all_tuned(reports):
        missing = [r.target.describe() for r in reports if r.entry is None]
        why = (f"no trial completed for {'; '.join(missing)} (see the table above: every "
               "trial pruned or failed, or the study is still running elsewhere)" if missing
               else "no study could run (see the messages above)")
        raise UserError(f"Tuning {BASELINE} and {loss} on suite '{suite.name}' gave no tuned "
                        f"weight: {why}. Fix that and validate again (the studies continue), "
                        "or validate without --tune-trials to use the default weights.")
    return reports


def plan_options(epochs: Optional[int], seeds: Optional[list[int]],
                 only: Optional[str] = None) -> PlanOptions:
    from benchmark.plan import parse_only

    return PlanOptions(epochs=epochs, seeds=seeds, only=parse_only(only))
