"""``kdbench perf [train|loader|losses]``: throughput benchmarks, measured in one process and
reported as ratios (speed targets live here, never in timed unit tests)."""

from __future__ import annotations

from benchmark.commands import positive_int


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("perf", help="measure training, loader and loss throughput",
                                   description=__doc__)
    parser.add_argument("target", nargs="?", default="train",
                        choices=["train", "loader", "losses"],
                        help="train: cohort vs separate runs and channels_last (default); "
                             "loader: tensor loader vs DataLoader+PIL; losses: each loss's share "
                             "of a training step")
    parser.add_argument("--teacher", default="resnet32x4")
    parser.add_argument("--student", default="resnet8x4")
    parser.add_argument("--losses", default="sp,kd,at,fitnet,rkd,crd",
                        help="comma-separated loss labels for the cohort")
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--steps", type=positive_int, default=4, help="timed steps per configuration")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--baseline", choices=["published-loop"], default=None,
                        help="train: time kdbench against a plain loop written the way the "
                             "published CRD code takes a step (single runs, a cohort, the fast "
                             "path; interleaved, best of --rounds)")
    parser.add_argument("--rounds", type=positive_int, default=3,
                        help="--baseline: interleaved rounds; the best of them is reported")
    parser.add_argument("--fast-paths", default="channels_last,bf16",
                        help="--baseline: fast paths timed for the first loss, any of "
                             "channels_last, bf16, compile, compile+channels_last (compile "
                             "takes a while on CPU)")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="torch CPU threads (default: torch's choice)")
    parser.set_defaults(func=perf_command)


def perf_command(args) -> int:
    import models
    from benchmark.runner import resolve_device

    # Names are canonical from here on (an alias such as MobileNetV2 is mobilenetv2); an unknown
    # name is a UserError naming close matches.
    args.teacher, args.student = (models.canonical_name(a) for a in (args.teacher, args.student))
    device = resolve_device(args.device)
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
    if getattr(args, "baseline", None) == "published-loop":
        return _published_loop(args, device)
    if args.target == "loader":
        from benchmark.perf_loader import main as loader_main

        loader_main(["--batch-size", str(args.batch_size), "--device", str(device)])
    elif args.target == "losses":
        from benchmark.perf_losses import measure_loss_overhead

        table = measure_loss_overhead(teacher=args.teacher, student=args.student,
                                      batch_size=args.batch_size, device=str(device))
        print(table.to_string(index=False))
    else:
        from benchmark.perf import format_training_report, measure_training
        from losses.composite import expand_loss_label

        labels = [s.strip() for s in args.losses.split(",") if s.strip()]
        for label in labels:
            expand_loss_label(label)
        timings = measure_training(args.teacher, args.student, tuple(labels),
                                   batch_size=args.batch_size, steps=args.steps,
                                   device=str(device))
        print(f"device: {device}, threads: {__import__('torch').get_num_threads()}, "
              f"{args.teacher} -> {args.student}, batch {args.batch_size}, {args.steps} steps")
        print(format_training_report(timings))
    return 0


def _published_loop(args, device) -> int:
    import sys

    from benchmark.errors import UserError
    from benchmark.perf_published import FAST_PATHS, compare_published_loop, format_comparison
    from losses.composite import expand_loss_label

    if args.target != "train":
        raise UserError(f"--baseline published-loop times training; drop '{args.target}' "
                        "(kdbench perf --baseline published-loop).")
    labels = [s.strip() for s in args.losses.split(",") if s.strip()]
    for label in labels:
        expand_loss_label(label)
    paths = tuple(p.strip() for p in args.fast_paths.split(",") if p.strip())
    unknown = sorted(set(paths) - set(FAST_PATHS))
    if unknown:
        raise UserError(f"--fast-paths {unknown} unknown; choose from "
                        f"{', '.join(FAST_PATHS)} (e.g. --fast-paths channels_last,bf16).")
    print(f"{args.teacher} -> {args.student}, batch {args.batch_size}, {args.steps} timed "
          f"steps, losses {', '.join(labels)}")
    result = compare_published_loop(args.teacher, args.student, tuple(labels),
                                    batch_size=args.batch_size, steps=args.steps,
                                    rounds=args.rounds, device=str(device), fast_paths=paths,
                                    log=lambda line: print(line, file=sys.stderr, flush=True))
    print(format_comparison(result))
    return 0
