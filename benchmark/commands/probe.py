"""``kdbench probe [SUITE] --dataset stl10,tinyimagenet``: the transfer probe (PROTOCOL §4).

Freezes every finished student (the CE-only baseline included) and teacher of the suite, trains a
linear classifier on its pooled embeddings of each target data set (resized to the source's input
size, normalised with the source's statistics) and records each result in MLflow experiment
``kdbench/<SUITE>-probe``. ``kdbench leaderboard SUITE --transfer`` renders the table.
Imports are lazy so ``kdbench --help`` stays fast.
"""

from __future__ import annotations

from benchmark.commands import non_negative_int, positive_int

import argparse

from benchmark.store import DEFAULT_STORE, STORE_ENV

DEFAULT_SUITE = "digits"
TARGET_HELP = ("stl10 (scored on its test split), tinyimagenet (scored on its val folder), or a "
               "held-out digits variant for digits suites: digits-shifted, digits-inverted, "
               "digits-shifted-inverted; comma-separated for several")


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("probe", help="linear transfer probe of a suite's networks",
                                   description=__doc__)
    parser.add_argument("suite", nargs="?", default=DEFAULT_SUITE,
                        help=f"suite whose runs are probed (default {DEFAULT_SUITE})")
    parser.add_argument("--dataset", required=True, help=TARGET_HELP)
    parser.add_argument("--runs", nargs="+", default=None, metavar="RUN_ID",
                        help="probe only these MLflow run ids (default: every finished student "
                             "and teacher of the suite)")
    parser.add_argument("--epochs", type=positive_int, default=30, help="probe epochs (default 30)")
    parser.add_argument("--lr", type=float, default=0.1,
                        help="SGD learning rate, cosine-annealed to 0 (default 0.1)")
    parser.add_argument("--batch-size", type=positive_int, default=None,
                        help="probe batch (default 256; 32 for the 179-image digits variants)")
    parser.add_argument("--weight-decay", type=float, default=0.0,
                        help="probe weight decay (default 0, none)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="mini-batch order seed (default 0)")
    parser.add_argument("--force", action="store_true",
                        help="probe again even where a finished probe with the same source, "
                             "weights, data set and settings exists")
    add_probe_options(parser)
    parser.set_defaults(func=probe_command)
    return parser


def add_probe_options(parser: argparse.ArgumentParser) -> None:
    """The data, tracking, store and device options, as ``kdbench run`` spells them."""
    parser.add_argument("--device", default="auto",
                        help="cpu, cuda, cuda:N or auto (CUDA when available)")
    parser.add_argument("--data-dir", default=None,
                        help="folder holding the data sets in their official on-disk formats")
    parser.add_argument("--download", action="store_true",
                        help="download missing data sets with torchvision's downloaders")
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow tracking URI (default: MLflow's own, sqlite:///mlflow.db)")
    parser.add_argument("--store", default=None,
                        help="store holding the weights; embeddings are cached in it "
                             f"(default: ${STORE_ENV} or ./{DEFAULT_STORE})")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def probe_command(args: argparse.Namespace) -> int:
    from benchmark.probe import ProbeSettings, print_summary, run_probe
    from benchmark.store import Store

    settings = ProbeSettings(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                             weight_decay=args.weight_decay, seed=args.seed)
    targets = [name.strip() for name in args.dataset.split(",") if name.strip()]
    outcome = run_probe(args.suite, targets, runs=args.runs, data_dir=args.data_dir,
                        tracking_uri=args.tracking_uri,
                        store=Store.resolve(args.store),
                        device=args.device, settings=settings, download=args.download,
                        force=args.force, progress=not args.no_progress)
    print_summary(outcome)
    print(f"\nTable: kdbench leaderboard {args.suite} --transfer"
          + (f" --tracking-uri {args.tracking_uri}" if args.tracking_uri else ""))
    return 1 if outcome.failed else 0
