"""``kdbench models [PATTERN]``: the registered architectures, their aliases, sizes and taps.

PATTERN is shell-style (``resnet8*``, ``tv_*``) and matched case-insensitively against each
model's canonical name and its aliases (default ``*``: every model). Parameter counts are in
millions for the class count and input channels each builder is made for (CIFAR models 100
classes, ``tv_*`` ImageNet models 1000, digits models 10 classes and 1 channel); ``--num-classes``
overrides the class count for all. Models are built on PyTorch's ``meta`` device, so counting
even the ImageNet models allocates no weights. Taps are the named feature taps of
``models.feature_taps`` (``logits``, the model output, is always available too).
"""

from __future__ import annotations

from benchmark.commands import positive_int

import argparse

COLUMNS = ("name", "aliases", "classes", "params_m", "params", "taps")
TABLE_COLUMNS = ("name", "aliases", "classes", "params_m", "taps")
TABLE_HEADERS = {"name": "name", "aliases": "aliases", "classes": "classes",
                 "params_m": "params (M)", "taps": "taps"}


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("models", help="list registered models, sizes and taps",
                                   description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pattern", nargs="?", default="*",
                        help="shell-style pattern on names and aliases, case-insensitive "
                             "(default '*')")
    parser.add_argument("--num-classes", type=positive_int, default=None,
                        help="count parameters for this many classes (default: each model's "
                             "own, 100 for CIFAR, 1000 for tv_*, 10 for digits)")
    parser.add_argument("--format", choices=("table", "csv"), default="table",
                        help="output format (default table)")
    parser.set_defaults(func=models_command)


def models_command(args: argparse.Namespace) -> int:
    names = matching_models(args.pattern)
    rows = [model_row(name, args.num_classes) for name in names]
    print(format_csv(rows) if args.format == "csv" else format_table(rows), end="")
    return 0


def matching_models(pattern: str) -> list[str]:
    """Canonical names whose name or any alias matches ``pattern`` (case-insensitive)."""
    import fnmatch

    from models.registry import list_models, model_entry

    wanted = pattern.lower()
    names = [name for name in list_models()
             if any(fnmatch.fnmatchcase(label.lower(), wanted)
                    for label in (name, *model_entry(name).aliases))]
    if not names:
        raise _no_match_error(pattern)
    return names


def _no_match_error(pattern: str):
    import difflib

    from benchmark.errors import user_error
    from models.registry import list_models, model_entry

    labels = [label for name in list_models() for label in (name, *model_entry(name).aliases)]
    by_lower = {label.lower(): label for label in labels}
    close = difflib.get_close_matches(pattern.lower(), list(by_lower), n=5)
    hint = f"Close names: {', '.join(by_lower[c] for c in close)}. " if close else ""
    return user_error(
        f"No registered model matches '{pattern}'",
        "the PATTERN argument of `kdbench models`",
        f"{hint}PATTERN is shell-style and case-insensitive on names and aliases (e.g. "
        f"'resnet*', 'tv_*', 'MobileNetV2'); run `kdbench models` to list all "
        f"{len(list_models())} models",
    )


def builder_defaults(name: str) -> tuple[int, int]:
    """``(num_classes, in_chans)`` the model's builder defaults to (else 100 and 3)."""
    import inspect

    from models.registry import model_entry

    params = inspect.signature(model_entry(name).builder).parameters

    def default(argument: str, fallback: int) -> int:
        value = params[argument].default if argument in params else inspect.Parameter.empty
        return value if isinstance(value, int) and not isinstance(value, bool) else fallback

    return default("num_classes", 100), default("in_chans", 3)


def count_parameters(name: str, num_classes: int, in_chans: int) -> int:
    """Parameter count of ``create_model(name, ...)``, built on the meta device (CPU fallback)."""
    import torch

    from benchmark.errors import UserError
    from models.registry import create_model

    try:
        with torch.device("meta"):
            model = create_model(name, num_classes=num_classes, in_chans=in_chans)
    except UserError:
        raise
    except Exception:  # noqa: BLE001 - a builder that cannot run on meta runs on the CPU
        model = create_model(name, num_classes=num_classes, in_chans=in_chans)
    return sum(p.numel() for p in model.parameters())


def model_row(name: str, num_classes: int | None = None) -> dict[str, str]:
    """One output row (all strings) for the canonical model ``name``."""
    from models.registry import model_entry

    entry = model_entry(name)
    default_classes, in_chans = builder_defaults(name)
    classes = default_classes if num_classes is None else num_classes
    params = count_parameters(name, classes, in_chans)
    return {"name": entry.name, "aliases": " ".join(entry.aliases), "classes": str(classes),
            "params_m": f"{params / 1e6:.2f}", "params": str(params),
            "taps": " ".join(entry.taps)}


def format_table(rows: list[dict[str, str]]) -> str:
    """Aligned plain-text table (numbers right-aligned), one line per row, header first."""
    numeric = {"classes", "params_m"}
    lines = [dict(TABLE_HEADERS)] + [{c: row[c] or "-" for c in TABLE_COLUMNS} for row in rows]
    widths = {c: max(len(line[c]) for line in lines) for c in TABLE_COLUMNS}

    def render(line: dict[str, str]) -> str:
        cells = [line[c].rjust(widths[c]) if c in numeric else line[c].ljust(widths[c])
                 for c in TABLE_COLUMNS]
        return "  ".join(cells).rstrip()

    return "".join(render(line) + "\n" for line in lines)


def format_csv(rows: list[dict[str, str]]) -> str:
    """CSV with a header row; aliases and taps are space-separated within their cells."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
