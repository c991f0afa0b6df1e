"""Intervals and paired differences against hand computations."""

import math

import numpy as np
import pytest

from diffinf_jax import stats


def test_interval_matches_hand_computation():
  # values 0.70, 0.74, 0.78: mean 0.74, s = 0.04, t(0.975, 2) = 4.302653.
  iv = stats.mean_interval([0.70, 0.74, 0.78])
  assert iv.mean == pytest.approx(0.74)
  assert iv.std == pytest.approx(0.04)
  half = 4.302652729749464 * 0.04 / math.sqrt(3)
  assert iv.low == pytest.approx(0.74 - half, abs=1e-12)
  assert iv.high == pytest.approx(0.74 + half, abs=1e-12)
  assert iv.text() == f"0.740 ± {half:.3f}"
  assert stats.t_quantile(0.95, 4) == pytest.approx(2.7764451, abs=1e-6)


def test_one_seed_has_no_interval():
  iv = stats.mean_interval([0.7])
  assert iv.low is None and iv.text() == "0.700 (n/a: 1 seed)"
  assert not iv.excludes_zero()
  assert stats.mean_interval([]).text() == "n/a (no runs)"


def test_paired_difference_pairs_by_key_and_reports_gaps():
  a = {(0, 0): 0.80, (0, 1): 0.82, (1, 0): 0.79, (1, 1): 0.90}
  b = {(0, 0): 0.70, (0, 1): 0.75, (1, 0): 0.74}   # (1, 1) missing
  iv, unpaired = stats.paired_difference(a, b)
  diffs = np.array([0.10, 0.07, 0.05])
  assert iv.n == 3 and iv.mean == pytest.approx(diffs.mean())
  assert iv.std == pytest.approx(diffs.std(ddof=1))
  assert unpaired == [(1, 1)]
  assert iv.excludes_zero()  # every pair improves


def test_nan_is_refused():
  with pytest.raises(ValueError, match="non-finite"):
    stats.mean_interval([0.5, float("nan")])
