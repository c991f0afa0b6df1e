"""Summaries over seeds: means with 95% t-intervals and paired differences.

A comparison is only as good as its intervals: with n runs of a method,
mean +- t_{0.975, n-1} * s / sqrt(n) (s the sample standard deviation,
ddof 1). Methods are compared on PAIRED runs (the same noise draw and
training seed): the interval of the mean difference over the pairs, not two
overlapping intervals. With one run there is no interval ("n/a (1 seed)"),
never a fake +- 0.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Hashable, Mapping

import numpy as np


@dataclasses.dataclass(frozen=True)
class Interval:
  """Mean of n values with its two-sided t-interval (None when n < 2)."""
  mean: float
  n: int
  std: float | None = None
  low: float | None = None
  high: float | None = None

  @property
  def half_width(self) -> float | None:
    return None if self.high is None else (self.high - self.low) / 2

  def excludes_zero(self) -> bool:
    """Whether the interval lies entirely above or below 0."""
    return self.low is not None and (self.low > 0 or self.high < 0)

  def text(self, digits: int = 3) -> str:
    if self.n == 0:
      return "n/a (no runs)"
    if self.n == 1:
      return f"{self.mean:.{digits}f} (n/a: 1 seed)"
    return f"{self.mean:.{digits}f} ± {self.half_width:.{digits}f}"


def t_quantile(confidence: float, dof: int) -> float:
  """Two-sided Student-t critical value (e.g. 2.776 for 95%, 4 dof)."""
  from scipy import stats
  return float(stats.t.ppf(0.5 + confidence / 2.0, dof))


def mean_interval(values, confidence: float = 0.95) -> Interval:
  """Mean, sample std (ddof 1) and t-interval of `values`.

  Raises:
    ValueError: a value is NaN or infinite (a broken run must not be
      averaged away).
  """
  v = np.asarray(list(values), np.float64)
  if v.size and not np.all(np.isfinite(v)):
    raise ValueError(f"non-finite value among {v.tolist()}")
  n = int(v.size)
  if n == 0:
    return Interval(float("nan"), 0)
  mean = float(v.mean())
  if n == 1:
    return Interval(mean, 1)
  std = float(v.std(ddof=1))
  half = t_quantile(confidence, n - 1) * std / math.sqrt(n)
  return Interval(mean, n, std, mean - half, mean + half)


def paired_difference(a: Mapping[Hashable, float], b: Mapping[Hashable, float],
                      confidence: float = 0.95
                      ) -> tuple[Interval, list[Hashable]]:
  """Interval of mean(a[k] - b[k]) over the keys both have (the pairs).

  Returns:
    (interval over the common pairs, the keys only one side has): a pair
    missing on one side is reported, never silently dropped.
  """
  common = [k for k in a if k in b]
  unpaired = sorted((set(a) ^ set(b)), key=str)
  return mean_interval([a[k] - b[k] for k in common], confidence), unpaired
