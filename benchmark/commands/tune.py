"""``kdbench tune [SUITE]``: tune each loss's weight with an Optuna study per (dataset, pair,
loss) on a validation split held out of the training set (never the test set), with the same
trial budget and schedule for every loss; trials train in cohorts, studies live in any Optuna
storage and several processes can share them. Writes the best weights to a tuned-weights file
that suites read with ``weight: tuned``. See docs/studies.md."""

from __future__ import annotations

from benchmark.commands import non_negative_int, positive_int

import argparse


def _names(values: list[str] | None) -> list[str]:
    """``--loss sp,kd --loss at`` -> ["sp", "kd", "at"]."""
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


def add_parser(subparsers) -> None:
    from benchmark.commands.run import add_common_run_options

    parser = subparsers.add_parser("tune", help="tune loss weights with Optuna studies",
                                   description=__doc__)
    parser.add_argument("suite", nargs="?", default="digits",
                        help="built-in suite name or path to a suite YAML (default: digits)")
    for option, what in (("--dataset", "data set"), ("--teacher", "teacher"),
                         ("--student", "student"), ("--loss", "loss label (e.g. sp, sp+kd)")):
        parser.add_argument(option, action="append", default=None,
                            help=f"only this {what}; repeat or comma-separate for several")
    parser.add_argument("--trials", type=int, default=12, help="trials per study (default 12)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs per trial (default: the suite recipe's; labelled scaled)")
    parser.add_argument("--storage", default=None,
                        help="Optuna storage: sqlite:///FILE.db (default sqlite:///optuna.db), "
                             "journal:FILE, or a postgresql:// / mysql:// URL")
    parser.add_argument("--study-name", default=None,
                        help="the study's name (one target) or the name prefix (several)")
    parser.add_argument("--space", choices=["weight", "full"], default="weight",
                        help="search the weight only, or also the loss's hyperparameters")
    parser.add_argument("--pruner", choices=["median", "hyperband", "none"], default="median")
    parser.add_argument("--sampler", choices=["tpe", "random"], default="tpe")
    parser.add_argument("--seed", type=int, default=0, help="sampler seed (default 0)")
    parser.add_argument("--train-seed", type=non_negative_int, default=None,
                        help="training seed of every trial (default: the pair's first seed)")
    parser.add_argument("--cohort-size", type=positive_int, default=4,
                        help="trials asked at once and trained as one cohort (default 4)")
    parser.add_argument("--tuned-weights", default=None,
                        help="file the best weights go to (default: the suite's "
                             "tuned_weights, else tuned_weights.yaml)")
    parser.add_argument("--stale-after", type=float, default=300.0,
                        help="seconds without heartbeat after which another machine's running "
                             "trial counts as dead and is retried (default 300)")
    add_common_run_options(parser, default_jobs=None)
    parser.set_defaults(func=tune_command)


def tune_command(args: argparse.Namespace) -> int:
    from benchmark.commands.run import check_device, run_options_from
    from losses.plugins import load_plugins
    from benchmark.config import load_suite
    from studies.targets import TargetFilter
    from studies.tuner import TuneSettings, all_tuned, tune_losses

    options = run_options_from(args)
    load_plugins(options.plugins)
    check_device(options)
    suite = load_suite(args.suite)
    selection = TargetFilter(datasets=_names(args.dataset), teachers=_names(args.teacher),
                             students=_names(args.student), losses=_names(args.loss))
    settings = TuneSettings(trials=args.trials, cohort_size=args.cohort_size, space=args.space,
                            pruner=args.pruner, sampler=args.sampler, seed=args.seed,
                            storage=args.storage, study_name=args.study_name,
                            tuned_weights=args.tuned_weights, grace_s=args.stale_after)
    reports = tune_losses(suite, selection, settings, options, epochs=args.epochs,
                          train_seed=args.train_seed)
    return 0 if all_tuned(reports) else 1
