"""``kdbench leaderboard``: a suite's runs as published-style tables, side by side with the papers.

Reads the suite's MLflow experiment (``kdbench/<suite>``), prints the markdown table and writes
``leaderboard.md/.csv/.tex``, ``index.html`` and ``leaderboard.png`` to ``results/<suite>/``.
Imports are lazy so ``kdbench --help`` stays fast.
"""

from __future__ import annotations

import argparse

DEFAULT_SUITE = "digits"


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "leaderboard", help="tables of a suite's results with error bars and tests",
        description="Build the leaderboard of a suite from its MLflow runs: per dataset, one "
                    "column per teacher -> student pair, rows Teacher, Student and each loss, "
                    "cells mean ± std (n seeds), each loss tested against a baseline paired by "
                    "seed (Holm-adjusted; better, worse, equivalent within ±delta, or "
                    "inconclusive with the seeds that would decide it), mean rank and IQM "
                    "across pairs. Runs in progress or failed are listed, never averaged in.")
    parser.add_argument("suite", nargs="?", default=DEFAULT_SUITE,
                        help=f"suite name (its experiment is kdbench/SUITE; default "
                             f"{DEFAULT_SUITE})")
    parser.add_argument("--format", default="md,csv,tex,html",
                        help="comma-separated outputs among md,csv,tex,html,png (html brings "
                             "png; default md,csv,tex,html)")
    parser.add_argument("--against", default=None,
                        help="baseline row for the significance tests (default: the suite's "
                             "baselines, one table each, the first in results/SUITE/ and each "
                             "further one in results/SUITE/against-BASELINE/; sp for a suite "
                             "that names none)")
    parser.add_argument("--test", choices=("paired", "wilcoxon", "welch"), default="paired",
                        help="paired: paired t-test over matched (teacher seed, seed) "
                             "(default); wilcoxon: Wilcoxon signed-rank test over them; "
                             "welch: Welch's unpaired t-test")
    parser.add_argument("--delta", type=float, default=0.5,
                        help="equivalence margin in accuracy points for the two one-sided "
                             "tests (default 0.5)")
    parser.add_argument("--agreement", action="store_true",
                        help="add a table of teacher-student top-1 agreement and KL on the "
                             "test set under each table")
    parser.add_argument("--metric", choices=("last", "best"), default="last",
                        help="last: test_acc_last, the protocol number (default); best: "
                             "test_acc_best, best epoch (not the protocol number)")
    published = parser.add_mutually_exclusive_group()
    published.add_argument("--published", action="store_true",
                           help="show the published value and our difference in every cell")
    published.add_argument("--published-only", action="store_true",
                           help="render the published tables themselves (no runs needed)")
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow tracking URI (default: MLflow's, i.e. MLFLOW_TRACKING_URI "
                             "or sqlite:///mlflow.db in the working directory)")
    parser.add_argument("--out", default=None,
                        help="output folder (default results/SUITE, or "
                             "results/published/rendered with --published-only)")
    parser.add_argument("--dataset", default=None, help="only this dataset's table")
    parser.add_argument("--configs", choices=("suite", "all"), default="suite",
                        help="suite: each cell averages only runs of the suite's own "
                             "configuration, other configurations are listed below the table "
                             "(default); all: every configuration as its own labelled row, "
                             "e.g. 'sp (w=1000)', 'kd (2 ep, scaled)'")
    parser.add_argument("--suite-file", default=None,
                        help="the suite YAML whose configuration the cells show (default: the "
                             "built-in suite of that name)")
    parser.add_argument("--transfer", action="store_true",
                        help="the transfer table instead (CRD Table 8 layout): linear-probe "
                             "accuracies recorded by `kdbench probe SUITE`, written to "
                             "results/SUITE/transfer/")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from benchmark.config import DEFAULT_BASELINE
    from benchmark.leaderboard import write_leaderboards, write_published_leaderboard

    if args.transfer:
        result = write_transfer_table(args)
    elif args.published_only:
        result = write_published_leaderboard(args.out, formats=args.format,
                                             against=args.against or DEFAULT_BASELINE,
                                             dataset=args.dataset)
    else:
        results = write_leaderboards(args.suite, args.tracking_uri, args.out,
                                     formats=args.format, metric=args.metric,
                                     against=args.against, published=args.published,
                                     dataset=args.dataset, suite_file=args.suite_file,
                                     all_configs=args.configs == "all", test=args.test,
                                     delta=args.delta, agreement=args.agreement)
        print(results[0].markdown)
        for result in results:
            print(f"Wrote (against {result.board.baseline}) "
                  + ", ".join(str(path) for path in result.paths.values()))
        return 0
    print(result.markdown)
    print("Wrote " + ", ".join(str(path) for path in result.paths.values()))
    return 0


def write_transfer_table(args: argparse.Namespace):
    """``--transfer``: the probe runs of the suite as the published transfer layout."""
    from benchmark.config import DEFAULT_BASELINE
    from benchmark.errors import user_error
    from benchmark.leaderboard.transfer import write_transfer_leaderboard

    if args.published_only or args.metric != "last":
        raise user_error("--transfer cannot be combined with --published-only or --metric",
                         "kdbench leaderboard --transfer",
                         "Drop them (the published transfer tables: --published-only "
                         "--dataset stl10 or tinyimagenet)")
    return write_transfer_leaderboard(args.suite, args.tracking_uri, args.out,
                                      formats=args.format,
                                      against=args.against or DEFAULT_BASELINE,
                                      published=args.published, dataset=args.dataset)
