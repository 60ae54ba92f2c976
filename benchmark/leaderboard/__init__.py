"""Leaderboards: a suite's MLflow runs as published-style tables with seeds, error bars and tests.

Pipeline: :mod:`.collect` (MLflow -> pandas) -> :mod:`.selection` (which runs count) ->
:mod:`.build` (tables per dataset; :mod:`.stats` for means and stds, :mod:`.paired`,
:mod:`.verdicts`, :mod:`.power` and :mod:`.across` for the paired tests, Holm, verdicts, seeds
needed, mean ranks and IQMs;
:mod:`.layout` for the published row/column order; :mod:`.published` for the papers' numbers) ->
renderers (:mod:`.markdown`, :mod:`.tidy`, :mod:`.latex`, :mod:`.html`, :mod:`.plot`) ->
:mod:`.write`. The runner calls :func:`write_leaderboards` (one table per suite baseline) at the
end of ``kdbench run``.
"""

from benchmark.leaderboard.write import (ALL_FORMATS, LeaderboardResult, parse_formats,
                                         write_leaderboard, write_leaderboards,
                                         write_published_leaderboard)

__all__ = ["ALL_FORMATS", "LeaderboardResult", "parse_formats", "write_leaderboard",
           "write_leaderboards", "write_published_leaderboard"]
