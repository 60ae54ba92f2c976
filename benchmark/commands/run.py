"""``kdbench run [SUITE]``: expand a suite into runs, train them in cohorts, track them in MLflow,
and end with the suite's leaderboard. With no suite it runs the default ``digits`` suite."""

from __future__ import annotations

import argparse

from benchmark.store import DEFAULT_STORE, STORE_ENV


def add_common_run_options(parser: argparse.ArgumentParser, default_jobs: str = "1",
                           executors: bool = True) -> None:
    """Options shared by ``run``, ``tune``, ``validate`` (and, without executors, ``teachers``)."""
    parser.add_argument("--device", default="auto",
                        help="cpu, cuda, cuda:N or auto (CUDA when available)")
    parser.add_argument("--data-dir", default=None,
                        help="folder holding the data sets in their official on-disk formats")
    parser.add_argument("--download", action="store_true",
                        help="download missing data sets with torchvision's downloaders")
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow tracking URI (default: MLflow's own, sqlite:///mlflow.db)")
    parser.add_argument("--store", default=None,
                        help="folder for teachers, checkpoints and student weights "
                             f"(default: ${STORE_ENV} or ./{DEFAULT_STORE})")
    parser.add_argument("--jobs", default=default_jobs,
                        help="local executor: cohorts trained in parallel processes, or 'auto': "
                             "one per CPU core on CPU (each with its share of the threads), 1 on "
                             "CUDA; ray executor: tuning workers, 'auto' = the cluster's slots "
                             f"(default: {default_jobs})")
    if executors:
        add_executor_options(parser)
    parser.add_argument("--plugin", action="append", default=[], metavar="FILE.py",
                        help="register the losses defined in a Python file (repeatable)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_executor_options(parser: argparse.ArgumentParser) -> None:
    """``--executor local|ray``, ``--address`` and ``--max-retries``."""
    parser.add_argument("--executor", choices=["local", "ray"], default="local",
                        help="where cohorts train: 'local' processes on this machine (default) "
                             "or 'ray' tasks on a Ray cluster (README: Running on a cluster)")
    parser.add_argument("--address", default=None,
                        help="Ray cluster address HOST:PORT for --executor ray (default: "
                             "$RAY_ADDRESS, else a Ray instance started on this machine)")
    from benchmark.executors import DEFAULT_MAX_RETRIES

    parser.add_argument("--max-retries", type=int, default=DEFAULT_MAX_RETRIES,
                        help="--executor ray: times a task lost with its node is retried; it "
                             f"resumes from its checkpoint (default {DEFAULT_MAX_RETRIES})")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("run", help="train a suite (default: digits)",
                                   description=__doc__)
    parser.add_argument("suite", nargs="?", default="digits",
                        help="built-in suite name or path to a suite YAML (default: digits)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="override the suite's seeds")
    parser.add_argument("--epochs", type=int, default=None,
                        help="override the recipe's epochs (the run is labelled 'scaled')")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="override the recipe's batch size (labelled 'scaled')")
    parser.add_argument("--only", default=None,
                        help="run a subset, e.g. loss=sp,student=resnet8x4")
    parser.add_argument("--amp", choices=["bf16"], default=None, help="bf16 autocast")
    parser.add_argument("--channels-last", action="store_true",
                        help="channels_last memory format for models and batches")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile student and teacher (CUDA: mode=reduce-overhead, "
                             "CUDA graphs); same math, not bitwise; labelled in the leaderboard")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the plan (runs, cohorts, already done, cost) and stop")
    parser.add_argument("--estimate", action="store_true",
                        help="with --dry-run: estimate the wall time on this device from a few "
                             "measured training steps of each cohort shape (GPU-hours on CUDA, "
                             "CPU-hours otherwise; benchmark/estimate.py)")
    parser.add_argument("--no-leaderboard", action="store_true",
                        help="do not write the leaderboard at the end")
    add_common_run_options(parser, default_jobs="auto")
    parser.set_defaults(func=run_command)


def run_options_from(args):
    """The :class:`benchmark.runner.RunOptions` of the common options."""
    from benchmark.runner import RunOptions
    from benchmark.store import Store

    from benchmark.executors import DEFAULT_MAX_RETRIES

    executor = getattr(args, "executor", "local")
    max_retries = getattr(args, "max_retries", DEFAULT_MAX_RETRIES)
    if max_retries < 0:
        from benchmark.errors import UserError

        raise UserError(f"--max-retries must be 0 or more, got {args.max_retries}. Pass e.g. "
                        "--max-retries 3.")
    options = RunOptions(device=args.device, data_dir=args.data_dir, download=args.download,
                         store=str(Store.resolve(args.store).root),
                         tracking_uri=args.tracking_uri,
                         jobs=parse_jobs(args.jobs, args.device, executor),
                         progress=not args.no_progress, plugins=list(args.plugin),
                         executor=executor, address=getattr(args, "address", None),
                         max_retries=max_retries)
    return options


def check_device(options) -> None:
    """Fail early on ``--device cuda`` without CUDA, on this machine (the local executor); a Ray
    cluster's GPUs are checked when the executor connects."""
    from benchmark.runner import resolve_device

    if options.executor == "local":
        resolve_device(options.device)


def parse_jobs(value, device: str, executor: str = "local") -> int:
    """``--jobs N`` or ``auto`` (CPU: one process per core; CUDA: one; Ray: 0, meaning as many
    as the cluster has slots). No value: 1 locally, ``auto`` on Ray."""
    import os

    from benchmark.errors import UserError
    from benchmark.runner import resolve_device

    if value is None:
        value = "auto" if executor == "ray" else "1"
    if str(value) == "auto":
        if executor == "ray":
            return 0
        return 1 if resolve_device(device).type == "cuda" else max(1, os.cpu_count() or 1)
    try:
        jobs = int(value)
    except ValueError:
        jobs = 0
    if jobs < 1:
        raise UserError(f"--jobs must be a whole number of at least 1 or 'auto', got "
                        f"'{value}'. Pass e.g. --jobs 2 or --jobs auto.")
    return jobs


def run_command(args) -> int:
    from benchmark.config import load_suite
    from benchmark.plan import PlanOptions, parse_only
    from benchmark.runner import describe_plan, execute, make_plan, print_summary
    from benchmark.tracking import Tracker
    from losses.plugins import load_plugins

    options = run_options_from(args)
    load_plugins(options.plugins)
    suite = load_suite(args.suite)
    check_device(options)
    plan_options = PlanOptions(seeds=args.seeds, epochs=args.epochs, batch_size=args.batch_size,
                               only=parse_only(args.only), amp=args.amp,
                               channels_last=args.channels_last, compile=args.compile)
    if plan_options.seeds is not None:
        from benchmark.config import validate_seeds
        from benchmark.errors import UserError

        try:
            validate_seeds(plan_options.seeds)
        except ValueError as err:
            raise UserError(f"--seeds {plan_options.seeds} is invalid: {err}.") from None
    tracker = Tracker(options.tracking_uri)
    plan = make_plan(suite, plan_options, options, tracker)
    print(describe_plan(plan) if args.dry_run else describe_plan(plan).splitlines()[0])
    if args.dry_run:
        if args.estimate:
            _print_estimate(plan, options)
        return 0
    outcome = execute(plan, options, tracker)
    print_summary(outcome)
    if not args.no_leaderboard:
        overridden = any(r.scaled for r in plan.runs) or bool(
            plan_options.amp or plan_options.channels_last or plan_options.compile)
        write_suite_leaderboard(suite.name, options.tracking_uri, suite_file=args.suite,
                                all_configs=overridden)
    return 1 if outcome.failed else 0


def write_suite_leaderboard(suite: str, tracking_uri, suite_file: str | None = None,
                            all_configs: bool = False) -> None:
    """Write the suite's leaderboards (results/<suite>/, one per baseline of the suite) and
    print the first, each cell in the suite's own configuration (``suite_file``: the built-in
    name or YAML path the run was given); a run with overrides (scaled epochs, amp, ...) adds
    its configuration as labelled rows."""
    from benchmark.leaderboard import write_leaderboards

    results = write_leaderboards(suite, tracking_uri=tracking_uri, suite_file=suite_file,
                                 all_configs=all_configs)
    print()
    print(results[0].markdown)
    for result in results:
        where = ", ".join(str(p) for p in result.paths.values())
        print(f"\nLeaderboard against {result.board.baseline} written to: {where}")


def _print_estimate(plan, options) -> None:
    """``--dry-run --estimate``: measured warm-up steps of each cohort shape, then the hours."""
    import sys

    from benchmark.estimate import describe_estimates, estimate_plan
    from benchmark.runner import resolve_device

    device = resolve_device(options.device)
    teachers, _, cohorts = estimate_plan(plan, device, data_dir=options.data_dir,
                                         log=lambda line: print(line, file=sys.stderr,
                                                                flush=True))
    print(describe_estimates(teachers, cohorts, device))
