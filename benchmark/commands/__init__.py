"""One module per ``kdbench`` sub-command; each defines ``add_parser(subparsers)``.

Also the argparse types for whole-number options (counts and seeds)."""

import argparse


def _whole_number_at_least(minimum: int, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number; pass e.g. "
                                         f"{max(minimum, 4) if minimum else 0}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{value} is not at least {minimum}")
    return value


def positive_int(text: str) -> int:
    """argparse type for counts (epochs, steps, batch sizes): a whole number of at least 1."""
    return _whole_number_at_least(1, text)


def non_negative_int(text: str) -> int:
    """argparse type for seeds: a whole number of at least 0."""
    return _whole_number_at_least(0, text)
