"""One module per ``kdbench`` sub-command; each defines ``add_parser(subparsers)``."""

import argparse


def positive_int(text: str) -> int:
    """argparse type for counts (epochs, steps, batch sizes): a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number; pass e.g. 4") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1; pass e.g. 4")
    return value


def non_negative_int(text: str) -> int:
    """argparse type for seeds: a whole number of at least 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number; pass e.g. 0") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; seeds are 0 or more")
    return value
