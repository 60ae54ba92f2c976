"""Validate a new loss against the SP baseline: register it, optionally tune its weight with the
same budget as SP, run it over a suite's pairs and seeds (reusing finished SP runs), and give a
verdict per pair: runs paired by (teacher seed, seed), the paired t-test (or Wilcoxon, or
Welch), Holm over the pairs, and one of better / worse / equivalent within +-delta /
inconclusive with the seeds that would decide it (the leaderboard's statistics,
:mod:`benchmark.leaderboard.verdicts`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from benchmark.config import LossConfig, SuiteConfig
from benchmark.errors import UserError
from benchmark.leaderboard.paired import DEFAULT_DELTA, DEFAULT_TEST
from benchmark.leaderboard.stats import Comparison
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
    comparison: Comparison
    delta: float = DEFAULT_DELTA

    @property
    def p_value(self) -> Optional[float]:
        return self.comparison.p_value

    @property
    def verdict(self) -> str:
        return self.comparison.verdict

    def line(self, name: str) -> str:
        from benchmark.leaderboard.stats import summarize

        b, c = summarize(self.baseline), summarize(self.candidate)
        return (f"{self.dataset:9s} {self.teacher + ' -> ' + self.student:36s} "
                f"{BASELINE} {b.mean:6.2f} ± {_std(b.std)} (n={b.n})   {name} {c.mean:6.2f} ± "
                f"{_std(c.std)} (n={c.n})   {_evidence_text(self.comparison)}   "
                f"{verdict_words(self.comparison, name, self.delta)}")


def _std(value: float) -> str:
    return "  n/a" if value != value else f"{value:5.2f}"


def _evidence_text(comparison: Comparison) -> str:
    """``diff +0.12 [-0.05, 0.30]   p 0.21 (Holm 0.42)   P(A>B) 0.67``, or ``p -``."""
    evidence = comparison.evidence
    if evidence is None:
        return "p       -"
    return (f"diff {evidence.difference:+6.2f} [{evidence.ci_low:+.2f}, {evidence.ci_high:+.2f}]"
            f"   p {comparison.p_value:7.3g} (Holm {comparison.p_adjusted:.3g})"
            f"   P(A>B) {evidence.prob_improvement:.2f}")


def verdict_words(comparison: Comparison, name: str, delta: float) -> str:
    """``cosine_sp better than sp``, ``... equivalent to sp within ±0.5``, ``inconclusive (12
    seeds would decide)``, or the reason there is no test."""
    from benchmark.leaderboard.cell_text import seeds_text
    from benchmark.leaderboard.stats import BETTER, EQUIVALENT, INCONCLUSIVE, WORSE

    verdict = comparison.verdict
    if verdict == BETTER:
        return f"{name} better than {BASELINE}"
    if verdict == WORSE:
        return f"{name} worse than {BASELINE}"
    if verdict == EQUIVALENT:
        return f"{name} equivalent to {BASELINE} within ±{delta:g}"
    if verdict == INCONCLUSIVE:
        return f"inconclusive ({seeds_text(comparison.seeds_needed)} seeds would decide)"
    return verdict


def validation_suite(suite: SuiteConfig, loss: str, tuned: bool) -> SuiteConfig:
    """The suite's pairs, seeds and recipe with two rows: the SP baseline and the new loss."""
    weight = "tuned" if tuned else "default"
    suffix = "@tuned" if tuned else ""
    rows = [LossConfig(label=f"{BASELINE}{suffix}", terms={"ce": 1.0, BASELINE: weight}),
            LossConfig(label=f"{loss}{suffix}", terms={"ce": 1.0, loss: weight})]
    return suite.model_copy(update={"losses": rows})


def verdicts(runs: list[RunSpec], tracker, suite: str, loss: str, *, test: str = DEFAULT_TEST,
             delta: float = DEFAULT_DELTA) -> list[PairVerdict]:
    """A verdict per pair on the protocol metric of the plan's finished runs, paired by
    (teacher seed, seed), Holm over the pairs (``loss`` names the candidate's rows)."""
    from benchmark.leaderboard.paired import gather_evidence
    from benchmark.leaderboard.verdicts import decide

    results = _paired_results(runs, tracker, suite)
    family = {pair: gather_evidence(sides["candidate"], sides["baseline"], test=test,
                                    delta=delta)
              for pair, sides in results.items()}
    decided = decide(family)
    return [PairVerdict(dataset, teacher, student, list(sides["baseline"].values()),
                        list(sides["candidate"].values()), decided[(dataset, teacher, student)],
                        delta)
            for (dataset, teacher, student), sides in results.items()]


def _paired_results(runs: list[RunSpec], tracker, suite: str) -> dict:
    """(dataset, teacher, student) -> {"baseline"|"candidate": {(teacher seed, seed): acc}}."""
    from benchmark.records import Metric, select

    counted = select(tracker.records(suite)).counted  # the rule the leaderboard and probe use
    results: dict[tuple, dict[str, dict]] = {}
    for spec in runs:
        record = counted.get(spec.config_hash)
        if record is None:
            continue
        pair = (spec.dataset, spec.teacher, spec.student)
        side = "baseline" if dict(spec.terms).get(BASELINE) is not None else "candidate"
        sides = results.setdefault(pair, {"baseline": {}, "candidate": {}})
        sides[side][(str(spec.teacher_seed), str(spec.seed))] = record.metric(
            Metric.TEST_ACC_LAST)
    return results


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
