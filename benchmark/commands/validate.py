"""``kdbench validate path/to/loss.py[:Name] [--suite SUITE] [--tune-trials N]``: register a new
loss, optionally tune its weight with the same budget as SP, run it over the suite's pairs and
seeds (reusing finished SP runs) and print a verdict per pair against SP: runs paired by
(teacher seed, seed), the paired t-test (--test wilcoxon or welch), Holm over the pairs, the mean
difference with its 95% bootstrap interval, P(A > B), and better / worse / equivalent within
+-delta (--delta) / inconclusive with the seeds that would decide it."""

from __future__ import annotations


def add_parser(subparsers) -> None:
    from benchmark.commands.run import add_common_run_options

    parser = subparsers.add_parser("validate", help="validate a new loss against SP",
                                   description=__doc__)
    parser.add_argument("loss_file", metavar="path/to/loss.py[:Name]",
                        help="the plugin file defining the new loss (optionally :ClassName)")
    parser.add_argument("--suite", default="digits", help="suite whose pairs/seeds to use")
    parser.add_argument("--tune-trials", type=int, default=None,
                        help="tune SP's and the new loss's weights with N trials each first")
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--epochs", type=int, default=None,
                        help="override the recipe's epochs (labelled scaled)")
    parser.add_argument("--only", default=None, help="a subset of pairs, e.g. student=resnet8x4")
    parser.add_argument("--test", choices=("paired", "wilcoxon", "welch"), default="paired",
                        help="paired t-test over matched seeds (default), Wilcoxon signed-rank, "
                             "or Welch's unpaired t-test")
    parser.add_argument("--delta", type=float, default=0.5,
                        help="equivalence margin in accuracy points (default 0.5)")
    add_common_run_options(parser)
    parser.set_defaults(func=validate_command)


def validate_command(args) -> int:
    from benchmark.commands.run import check_device, run_options_from
    from benchmark.config import load_suite
    from benchmark.errors import UserError
    from benchmark.leaderboard.build import check_test_options
    from benchmark.leaderboard.paired import TEST_NAMES
    from benchmark.runner import execute, make_plan, print_summary
    from benchmark.tracking import Tracker
    from benchmark.validate import (BASELINE, plan_options, tune_both, validation_suite,
                                    verdicts)
    from losses.plugins import load_plugin, load_plugins

    options = run_options_from(args)
    names = load_plugin(args.loss_file, if_needed=True)
    options.plugins = [args.loss_file, *options.plugins]  # worker processes and tasks load it too
    load_plugins(options.plugins)
    new = names[-1]
    if new == BASELINE:
        raise UserError(f"The plugin {args.loss_file} registers '{BASELINE}', the baseline "
                        "itself. Give the new loss its own name with @register_loss('name').")
    check_test_options(args.test, args.delta)
    # Validation tunes into ./tuned_weights.yaml, never into a suite's shipped weights file.
    suite = load_suite(args.suite).model_copy(update={"tuned_weights": None})
    tuned = bool(args.tune_trials)
    if tuned:  # the same studies and tuned-weights file as `kdbench tune SUITE --loss sp,NEW`
        check_device(options)
        tune_both(suite, new, args.tune_trials, args.epochs, options)
    derived = validation_suite(suite, new, tuned)
    tracker = Tracker(options.tracking_uri)
    plan = make_plan(derived, plan_options(args.epochs, args.seeds, args.only), options, tracker)
    print(f"Validating '{new}' against {BASELINE} on suite '{suite.name}': "
          f"{len(plan.runs)} runs, {len(plan.done)} already finished (reused).")
    outcome = execute(plan, options, tracker)
    print_summary(outcome)
    rows = verdicts(plan.runs, tracker, suite.name, new, test=args.test, delta=args.delta)
    print(f"\nVerdict per pair ({new} vs {BASELINE}, test top-1 at the last epoch; "
          f"{TEST_NAMES[args.test]} over seeds paired by (teacher seed, seed), Holm over the "
          f"pairs, alpha 0.05; equivalent: within ±{args.delta:g} points by two one-sided "
          "tests; diff: mean difference [95% bootstrap interval]; P(A>B): share of seeds "
          "where it beats SP):")
    for row in rows:
        print("  " + row.line(new))
    return 1 if outcome.failed else 0
