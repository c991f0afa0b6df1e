"""Confident learning receives out-of-sample probabilities only."""

import numpy as np
import pytest

from diffinf_jax.detection import confident
from diffinf_jax.detection import crossfit
from diffinf_jax.detection import folds as folds_lib
from diffinf_jax.detection import pruned


def _toy(n_per=30, seed=0):
  """3 separable classes, 4 labels flipped; a logistic model finds them."""
  rng = np.random.default_rng(seed)
  clean = np.repeat(np.arange(3), n_per)
  x = rng.normal(scale=0.5, size=(clean.size, 2)) + 8.0 * np.array(
      [[0, 0], [1, 0], [0, 1]])[clean]
  y = clean.copy()
  flips = np.array([2, 35, 61, 80])
  y[flips] = (y[flips] + 1) % 3
  return x, y, flips


def test_score_is_one_minus_self_confidence():
  probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.3, 0.4]])
  oos = crossfit.OutOfSample(probs, np.array([0, 1, 0], np.int32))
  y = np.array([0, 0, 2])
  np.testing.assert_allclose(confident.score(y, oos), [0.3, 0.9, 0.6])
  assert np.argsort(-confident.score(y, oos)).tolist() == [1, 2, 0]


def test_bare_arrays_are_refused():
  with pytest.raises(TypeError, match="out-of-sample"):
    confident.score(np.array([0, 1]), np.eye(2))
  with pytest.raises(TypeError, match="out-of-sample"):
    confident.find_issues(np.array([0, 1]), np.eye(2))


def test_cleanlab_receives_the_cross_fitted_probabilities(monkeypatch):
  x, y, _ = _toy()
  f = folds_lib.assign_folds(y, 3, seed=0)
  seen = {}
  fit = crossfit.make_logistic_fit_predict(x, y, 3)

  def fit_predict(train, held):
    # Record which model produced each row: none of them saw it.
    assert not set(train) & set(held)
    return fit(train, held)

  oos = crossfit.cross_fit(f, fit_predict, 3)
  import cleanlab.filter
  import cleanlab.rank
  real_rank = cleanlab.rank.get_label_quality_scores
  real_find = cleanlab.filter.find_label_issues

  def spy_rank(labels, pred_probs, **kw):
    seen["rank"] = pred_probs
    return real_rank(labels, pred_probs, **kw)

  def spy_find(labels, pred_probs, **kw):
    seen["find"] = pred_probs
    return real_find(labels, pred_probs, **kw)

  monkeypatch.setattr(cleanlab.rank, "get_label_quality_scores", spy_rank)
  monkeypatch.setattr(cleanlab.filter, "find_label_issues", spy_find)
  confident.score(y, oos)
  confident.find_issues(y, oos)
  assert seen["rank"] is oos.probs and seen["find"] is oos.probs


def test_find_issues_on_a_toy_case():
  x, y, flips = _toy()
  oos = crossfit.cross_fit_logistic(x, y, folds_lib.assign_folds(y, 3, 0), 3,
                                    inverse_reg=10.0)
  issues = confident.find_issues(y, oos)
  assert sorted(np.flatnonzero(issues.mask)) == sorted(flips)
  assert issues.num_issues == 4
  assert issues.joint.shape == (3, 3)
  assert issues.joint.sum() == pytest.approx(1.0)
  assert issues.noise_rate == pytest.approx(4 / 90, abs=0.03)
  # The four flips are also the four most suspicious by score.
  top = np.argsort(-confident.score(y, oos))[:4]
  assert sorted(top) == sorted(flips)


def test_unknown_rank_method_names_the_key():
  oos = crossfit.OutOfSample(np.eye(2), np.array([0, 1], np.int32))
  with pytest.raises(ValueError, match="confident_learning.rank_method"):
    confident.score(np.array([0, 1]), oos, "bogus")


def test_rounds_refit_without_previous_issues_and_stay_out_of_sample():
  x, y, flips = _toy()
  f = folds_lib.assign_folds(y, 3, seed=0)
  fit = crossfit.make_logistic_fit_predict(x, y, 3, inverse_reg=10.0)
  calls = []

  def fit_predict(train, held):
    calls.append(train)
    assert not set(train) & set(held)
    return fit(train, held)

  oos, issues = pruned.cross_fit_rounds(y, f, fit_predict, 3, rounds=2)
  assert len(calls) == 6
  for train in calls[:3]:
    assert set(flips) & set(train)      # round 1 trains on everything
  for train in calls[3:]:
    assert not set(flips) & set(train)  # round 2 leaves the issues out
  assert sorted(np.flatnonzero(issues.mask)) == sorted(flips)
  assert oos.probs.shape == (90, 3)
  with pytest.raises(ValueError, match=r"detection\.crossfit\.rounds=0"):
    pruned.cross_fit_rounds(y, f, fit_predict, 3, rounds=0)
