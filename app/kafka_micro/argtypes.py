"""argparse types shared by the subcommands: a bad option names the value and the rule."""

import argparse


def positive_int(text: str) -> int:
    """A whole number of at least 1."""
    return _whole_number(text, at_least=1)


def non_negative_int(text: str) -> int:
    """A whole number of at least 0."""
    return _whole_number(text, at_least=0)


def _whole_number(text: str, at_least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < at_least:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least {at_least}")
    return value


def positive_float(text: str) -> float:
    """A number greater than 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return value
