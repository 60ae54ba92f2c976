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
    parser.set_defaults(func=perf_command)


def perf_command(args) -> int:
    import models
    from benchmark.runner import resolve_device

    # Names are canonical from here on (an alias such as MobileNetV2 is mobilenetv2); an unknown
    # name is a UserError naming close matches.
    args.teacher, args.student = (models.canonical_name(a) for a in (args.teacher, args.student))
    device = resolve_device(args.device)
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
