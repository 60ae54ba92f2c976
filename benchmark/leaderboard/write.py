"""Write a leaderboard's files: ``leaderboard.md/.csv/.tex``, ``index.html``, ``leaderboard.png``.

:func:`write_leaderboard` is the entry point for ``kdbench leaderboard SUITE`` and for the runner
at the end of ``kdbench run``: it reads the suite's MLflow runs, builds the tables and writes the
requested formats to ``results/<suite>/``. :func:`write_published_leaderboard` does the same for
the published tables (``--published-only``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from benchmark.errors import user_error
from benchmark.leaderboard.build import DEFAULT_BASELINE, build_leaderboard
from benchmark.leaderboard.collect import collect_runs
from benchmark.leaderboard.html import render_html
from benchmark.leaderboard.latex import render_latex
from benchmark.leaderboard.markdown import render_markdown
from benchmark.leaderboard.paired import DEFAULT_DELTA, DEFAULT_TEST
from benchmark.leaderboard.plot import plot_leaderboard
from benchmark.leaderboard.published import PUBLISHED_DIR, load_published
from benchmark.leaderboard.published_board import build_published_board
from benchmark.leaderboard.selection import planned_specs
from benchmark.leaderboard.table import Leaderboard
from benchmark.leaderboard.tidy import render_csv

ALL_FORMATS = ("md", "csv", "tex", "html", "png")
FILE_NAMES = {"md": "leaderboard.md", "csv": "leaderboard.csv", "tex": "leaderboard.tex",
              "html": "index.html", "png": "leaderboard.png"}
RESULTS_DIR = Path("results")
PUBLISHED_RENDER_DIR = PUBLISHED_DIR / "rendered"


@dataclass
class LeaderboardResult:
    """What was built and written: the board, its markdown (to print) and the file paths."""

    board: Leaderboard
    markdown: str
    paths: dict[str, Path] = field(default_factory=dict)


def parse_formats(text: str | Iterable[str]) -> tuple[str, ...]:
    """``"md,csv"`` -> ("md", "csv"); ``html`` brings ``png`` (the page shows the plot)."""
    names = [name.strip().lower() for name in
             (text.split(",") if isinstance(text, str) else text) if name.strip()]
    unknown = [name for name in names if name not in ALL_FORMATS]
    if unknown or not names:
        raise user_error(f"Unknown output format(s): {', '.join(unknown) or '(none given)'}",
                         "--format", f"Choose from {','.join(ALL_FORMATS)} (comma-separated)")
    if "html" in names and "png" not in names:
        names.append("png")
    return tuple(dict.fromkeys(names))


def write_leaderboard(suite_name: str, tracking_uri: str | None = None,
                      out_dir: str | Path | None = None, *,
                      against: str = DEFAULT_BASELINE, **options) -> LeaderboardResult:
    """Read ``kdbench/<suite_name>`` from MLflow and write its leaderboard against one baseline
    (default ``results/<suite_name>/``); ``options``: those of :func:`write_leaderboards`."""
    [result] = write_leaderboards(suite_name, tracking_uri, out_dir, against=against, **options)
    return result


def write_leaderboards(suite_name: str, tracking_uri: str | None = None,
                       out_dir: str | Path | None = None, *, against: str | None = None,
                       formats: str | Iterable[str] = ALL_FORMATS, metric: str = "last",
                       published: bool = False, dataset: str | None = None,
                       suite_file: str | None = None, all_configs: bool = False,
                       test: str = DEFAULT_TEST, delta: float = DEFAULT_DELTA,
                       agreement: bool = False) -> list[LeaderboardResult]:
    """Read ``kdbench/<suite_name>`` from MLflow once and write one leaderboard per baseline:
    ``against``, else the suite's ``baselines`` (the first in ``out_dir``, default
    ``results/<suite_name>/``, each further one in ``<out_dir>/against-<baseline>/``, each
    noting where the others are). ``tracking_uri=None`` uses MLflow's default store.

    Each cell shows the configuration the suite (``suite_file``, default the suite's name)
    plans for it; ``all_configs`` adds every other configuration as its own labelled row.
    ``test``, ``delta``: the comparison (:func:`.build.build_leaderboard`); ``agreement``
    adds the teacher-agreement tables."""
    runs = collect_runs(suite_name, tracking_uri)
    planned, why = planned_specs(suite_file or suite_name)
    baselines = [against] if against is not None else suite_baselines(suite_file or suite_name)
    target = Path(out_dir) if out_dir is not None else RESULTS_DIR / suite_name
    folders = [target, *(target / f"against-{b}" for b in baselines[1:])]
    results = []
    for baseline, where in zip(baselines, folders):
        board = build_leaderboard(runs, suite_name, metric=metric, baseline=baseline,
                                  published=load_published(), show_published=published,
                                  dataset=dataset, planned=planned, all_configs=all_configs,
                                  test=test, delta=delta, agreement=agreement)
        if planned is None:
            board.notes.append(f"The suite's own configuration is unknown here "
                               f"({why.rstrip('.')}); each cell shows the configuration with "
                               "the most finished runs.")
        board.notes.extend(f"The same runs tested against {b}: {folder}/."
                           for b, folder in zip(baselines, folders) if b != baseline)
        results.append(write_outputs(board, where, parse_formats(formats)))
    return results


def suite_baselines(suite_name: str) -> list[str]:
    """The suite's ``baselines`` field, or the default baseline when the suite file cannot be
    loaded here (a suite recorded elsewhere: its tables say their configuration is unknown)."""
    from benchmark.config import load_suite
    from benchmark.errors import UserError

    try:
        return list(load_suite(suite_name).baselines)
    except UserError:
        return [DEFAULT_BASELINE]


def write_published_leaderboard(out_dir: str | Path | None = None, *,
                                formats: str | Iterable[str] = ALL_FORMATS,
                                against: str = DEFAULT_BASELINE,
                                dataset: str | None = None) -> LeaderboardResult:
    """Render the committed published tables in the leaderboard layout."""
    board = build_published_board(load_published(), baseline=against, dataset=dataset)
    target = Path(out_dir) if out_dir is not None else PUBLISHED_RENDER_DIR
    return write_outputs(board, target, parse_formats(formats))


def write_outputs(board: Leaderboard, out_dir: Path, formats: tuple[str, ...]) -> LeaderboardResult:
    """Render ``board`` in each format and write the files under ``out_dir``."""
    markdown = render_markdown(board)
    png = plot_leaderboard(board) if "png" in formats else None
    texts = {"md": lambda: markdown, "csv": lambda: render_csv(board),
             "tex": lambda: render_latex(board), "html": lambda: render_html(board, png)}
    from benchmark.checkpoint import atomic_write_bytes

    out_dir.mkdir(parents=True, exist_ok=True)
    result = LeaderboardResult(board=board, markdown=markdown)
    rendered = {name: png if name == "png" else texts[name]().encode("utf-8") for name in formats}
    for name, data in rendered.items():  # rendered first, then each file replaced atomically:
        path = out_dir / FILE_NAMES[name]  # a crash leaves every file old or new, never torn
        atomic_write_bytes(path, data)
        result.paths[name] = path
    return result
