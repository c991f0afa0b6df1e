"""The comparison table: pairing by (noise seed, training seed), gaps, n/a."""

import numpy as np
import pytest

from diffinf_jax import stats
from diffinf_jax.pipeline import tables


def _row(method, group, values, missing=()):
  return tables.Row(method, method.upper(), group, "-",
                    {pair: {"accuracy": v, "auroc_macro_ovr": v,
                            "kappa_linear": v} for pair, v in values.items()},
                    list(missing))


def test_differences_pair_runs_by_noise_and_training_seed():
  ce = _row("ce", "baseline", {(0, 0): 0.60, (0, 1): 0.62, (1, 0): 0.58,
                               (1, 1): 0.64})
  # The same seeds in another order: pairing is by key, not position.
  dif = _row("diffinf", "diffinf", {(1, 1): 0.70, (1, 0): 0.61,
                                    (0, 1): 0.66, (0, 0): 0.69})
  iv, unpaired = tables.difference(dif, ce, "accuracy")
  diffs = np.array([0.69 - 0.60, 0.66 - 0.62, 0.61 - 0.58, 0.70 - 0.64])
  assert iv.n == 4 and not unpaired
  assert iv.mean == pytest.approx(diffs.mean())
  half = stats.t_quantile(0.95, 3) * diffs.std(ddof=1) / 2.0
  assert iv.high - iv.mean == pytest.approx(half)


def test_missing_pair_is_an_explicit_gap():
  ce = _row("ce", "baseline", {(0, 0): 0.6, (1, 0): 0.7})
  late = _row("promix", "baseline", {(0, 0): 0.8}, missing=[(1, 0)])
  md = tables.markdown([ce, late], {})
  assert "| PROMIX | - | 1 (1 missing) | 0.800 (n/a: 1 seed)" in md
  diff = [d for d in tables.difference_rows([ce, late])
          if d["metric"] == "accuracy"]
  assert diff[0]["pairs"] == 1 and diff[0]["unpaired"] == 1
  assert diff[0]["significant"] == "no"  # one pair: no interval


def test_comparisons_a_reader_needs():
  runs = {(0, 0): 0.5, (0, 1): 0.6}
  rows = [_row("ce", "baseline", runs), _row("small_loss", "baseline",
                                             {k: v + .2 for k, v in
                                              runs.items()}),
          _row("influence_removal", "removal", runs),
          _row("diffinf", "diffinf", runs),
          _row("diffinf@x:0.2", "diffinf", runs),
          _row("influence_removal@x:0.2", "removal", runs)]
  pairs = [(a.method, b.method) for a, b in tables.comparisons(rows)]
  assert ("diffinf", "influence_removal") in pairs
  assert ("diffinf@x:0.2", "influence_removal@x:0.2") in pairs
  assert ("diffinf", "small_loss") in pairs  # the best baseline
  assert sum(b == "ce" for _, b in pairs) == 5
