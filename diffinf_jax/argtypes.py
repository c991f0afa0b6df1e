"""Command-line argument types that reject bad values with a clear message."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
  """argparse type: an integer >= 1 (`--batch-size 0` is refused at parse
  time, naming the flag, instead of failing deep inside)."""
  try:
    value = int(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
  if value < 1:
    raise argparse.ArgumentTypeError(f"{value} must be >= 1")
  return value
