"""``kdbench check-fast-path [SUITE]``: is the fast path (bf16 autocast, channels_last,
``torch.compile``) equivalent to the protocol's fp32 path?

Every planned run of the suite trains twice over the suite's seeds, on the same data and from
the same trained teacher: once as the protocol says, once with the fast-path options. Each
(teacher seed, seed) pairs the two (same initialisation, data order, augmentation and teacher),
so each loss and pair gets the paired difference of final test accuracy, fast - protocol, with
:func:`benchmark.leaderboard.paired.gather_evidence` (paired t-test, TOST within +-delta) and a
Holm-adjusted four-outcome verdict from :func:`benchmark.leaderboard.verdicts.decide`
(equivalent / better / worse / inconclusive). Nothing is logged to MLflow; teachers come from
(or are trained into) the store. On digits a few epochs take minutes on a CPU.
"""

from __future__ import annotations

from benchmark.commands import positive_int

DEFAULT_EPOCHS = 5


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("check-fast-path",
                                   help="paired equivalence test: fast path vs protocol",
                                   description=__doc__)
    parser.add_argument("suite", nargs="?", default="digits",
                        help="built-in suite name or suite YAML (default: digits)")
    parser.add_argument("--epochs", type=positive_int, default=DEFAULT_EPOCHS,
                        help=f"epochs per run (default {DEFAULT_EPOCHS})")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="override the suite's seeds (2 or more for a test)")
    parser.add_argument("--only", default=None, help="a subset, e.g. loss=kd,student=...")
    parser.add_argument("--amp", choices=["bf16", "none"], default="bf16",
                        help="fast path's autocast (default bf16)")
    parser.add_argument("--no-channels-last", action="store_true",
                        help="fast path without channels_last")
    parser.add_argument("--compile", action="store_true", help="fast path with torch.compile")
    parser.add_argument("--delta", type=float, default=None,
                        help="equivalence margin in accuracy points (default: the "
                             "leaderboard's, 0.5)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--store", default=None, help="folder holding the teachers")
    parser.add_argument("--data-dir", default=None)
    parser.set_defaults(func=check_fast_path_command)


def fast_options(args) -> dict:
    """The fast path's fields of :class:`benchmark.plan.RunSpec`."""
    return {"amp": None if args.amp == "none" else args.amp,
            "channels_last": not args.no_channels_last, "compile": bool(args.compile)}


def check_fast_path_command(args) -> int:
    from benchmark.config import load_suite
    from benchmark.errors import UserError
    from benchmark.leaderboard.paired import DEFAULT_DELTA
    from benchmark.plan import PlanOptions, expand_suite, parse_only
    from benchmark.runner import resolve_device
    from benchmark.store import Store

    suite = load_suite(args.suite)
    fast = fast_options(args)
    if not any(fast.values()):
        raise UserError("The fast path has no option on; drop --amp none or "
                        "--no-channels-last, or add --compile.")
    options = PlanOptions(seeds=args.seeds, epochs=args.epochs, only=parse_only(args.only))
    protocol = expand_suite(suite, options)
    device = resolve_device(args.device)
    results = compare_paths(protocol, fast, device, Store.resolve(args.store).root,
                            data_dir=args.data_dir)
    delta = DEFAULT_DELTA if args.delta is None else float(args.delta)
    print(f"fast path: {describe_fast(fast)}; {args.epochs} epochs; device {device}")
    print(format_verdicts(results, delta))
    return 0


def describe_fast(fast: dict) -> str:
    parts = [fast["amp"] or "fp32"]
    parts += [name for name in ("channels_last", "compile") if fast[name]]
    return " + ".join(parts)


def compare_paths(protocol, fast: dict, device, store, data_dir=None):
    """Train each protocol run and its fast-path twin; returns
    ``{(dataset, teacher, student, loss): {"protocol": {key: acc}, "fast": {key: acc}}}``
    with key = (teacher seed, seed) and acc the final test accuracy."""
    import torch

    from benchmark.engine import Cohort, RunEnv, train_cohort
    from benchmark.plan import group_cohorts
    from benchmark.teachers import TeacherStore

    import tempfile
    from pathlib import Path

    env = RunEnv(device=device, store=store, data_dir=data_dir)  # teachers: the store's
    scratch = tempfile.TemporaryDirectory(prefix="kdbench-fast-path-")
    # students' checkpoints and weights: a scratch store, so nothing resumes from or lands in
    # the user's store
    student_env = RunEnv(device=device, store=Path(scratch.name), data_dir=data_dir)
    teachers = TeacherStore(store)
    results: dict[tuple, dict[str, dict]] = {}
    for cohort in group_cohorts(protocol):
        specs = list(cohort.runs)
        first = specs[0]
        teacher = None
        if first.teacher is not None and first.teacher_init == "trained":
            teacher_spec = first.teacher_spec()
            if not teachers.has(teacher_spec):
                [trained] = train_cohort([teacher_spec], env)
                if trained.status != "FINISHED":
                    raise RuntimeError(f"teacher {teacher_spec.student} failed: {trained.reason}")
        for path, runs in (("protocol", specs),
                           ("fast", [s.model_copy(update=fast) for s in specs])):
            if first.teacher is not None and first.teacher_init == "trained":
                from benchmark.data import load_splits

                info = load_splits(first.dataset, data_dir, val_fraction=first.val_fraction,
                                   split_seed=first.split_seed).info
                teacher, _ = teachers.load(teacher_spec, info.num_classes, info.in_chans,
                                           device)  # the protocol's teacher, both paths
            done = Cohort(runs, student_env, teacher=teacher).run()
            for spec, result in zip(runs, _in_order(runs, done)):
                if result.status != "FINISHED":
                    raise RuntimeError(f"{path} run {spec.loss} seed {spec.seed} failed: "
                                       f"{result.reason}")
                cell = results.setdefault((spec.dataset, spec.teacher, spec.student, spec.loss),
                                          {"protocol": {}, "fast": {}})
                cell[path][(spec.teacher_seed, spec.seed)] = result.test_acc_last
        del teacher
        if device.type == "cuda":
            torch.cuda.empty_cache()
    scratch.cleanup()
    return results


def _in_order(specs, results):
    by_hash = {r.spec.config_hash: r for r in results}
    return [by_hash[s.config_hash] for s in specs]


def format_verdicts(results: dict, delta: float) -> str:
    """One line per (pair, loss): mean difference, its interval, p-values and the verdict."""
    from benchmark.leaderboard.paired import gather_evidence
    from benchmark.leaderboard.verdicts import decide

    family = {cell: gather_evidence(paths["fast"], paths["protocol"], delta=delta)
              for cell, paths in results.items()}
    verdicts = decide(family)
    lines = [f"{'dataset':8s} {'teacher -> student':38s} {'loss':8s} {'n':>2s} "
             f"{'protocol':>8s} {'fast':>8s} {'diff':>7s} {'95% CI':>17s} {'p_adj':>7s} "
             f"{'p_tost':>7s}  verdict (+-{delta:g} points)"]
    for cell, paths in results.items():
        dataset, teacher, student, loss = cell
        keys = sorted(set(paths["fast"]) & set(paths["protocol"]))
        protocol = sum(paths["protocol"][k] for k in keys) / max(len(keys), 1)
        fast = sum(paths["fast"][k] for k in keys) / max(len(keys), 1)
        comparison = verdicts[cell]
        ev = comparison.evidence
        ci = f"[{ev.ci_low:+.2f}, {ev.ci_high:+.2f}]" if ev is not None else "-"
        p_adj = _num(comparison.p_adjusted)
        p_tost = _num(comparison.p_tost_adjusted)
        lines.append(f"{dataset:8s} {f'{teacher} -> {student}':38s} {loss:8s} {len(keys):2d} "
                     f"{protocol:8.2f} {fast:8.2f} {fast - protocol:+7.2f} {ci:>17s} "
                     f"{p_adj:>7s} {p_tost:>7s}  {comparison.verdict}")
    counts: dict[str, int] = {}
    for comparison in verdicts.values():
        counts[comparison.verdict] = counts.get(comparison.verdict, 0) + 1
    lines.append("verdicts: " + ", ".join(f"{n} {v}" for v, n in sorted(counts.items())))
    return "\n".join(lines)


def _num(value) -> str:
    return "-" if value is None else f"{value:.3f}"
