"""The transfer probe (PROTOCOL §4): linear evaluation of a suite's frozen networks.

:func:`run_probe` finds the suite's finished students and teachers in MLflow
(:mod:`.sources`), takes each frozen network's pooled embeddings of a target data set
(:mod:`.targets`, :mod:`.digits_variants`; :mod:`.embeddings`, cached by :mod:`.cache`), trains a
linear classifier on them with the stated settings (:mod:`.settings`, :mod:`.linear`) and records
each result as an MLflow run in ``kdbench/<suite>-probe`` (:mod:`.recording`).
``kdbench leaderboard SUITE --transfer`` tabulates them (:mod:`benchmark.leaderboard.transfer`).
"""

from benchmark.probe.run import ProbeOutcome, ProbeResult, print_summary, run_probe
from benchmark.probe.settings import ProbeSettings
from benchmark.probe.targets import list_targets

__all__ = ["ProbeOutcome", "ProbeResult", "ProbeSettings", "list_targets", "print_summary",
           "run_probe"]
