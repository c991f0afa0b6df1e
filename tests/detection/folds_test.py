"""Stratified, seeded fold assignment."""

import numpy as np
import pytest

from diffinf_jax.detection import folds


def _labels(seed=0, n=203, k=3):
  return np.random.default_rng(seed).integers(0, k, n)


def test_same_seed_same_folds_other_seed_other_folds():
  y = _labels()
  a = folds.assign_folds(y, 5, seed=3)
  np.testing.assert_array_equal(a, folds.assign_folds(y, 5, seed=3))
  assert not np.array_equal(a, folds.assign_folds(y, 5, seed=4))


@pytest.mark.parametrize("k", [2, 3, 5, 7])
def test_every_class_in_every_fold_and_balanced(k):
  y = _labels(n=211, k=4)
  f = folds.assign_folds(y, k, seed=0)
  assert f.dtype == np.int32 and set(np.unique(f)) == set(range(k))
  sizes = np.bincount(f, minlength=k)
  assert sizes.max() - sizes.min() <= 1
  for c in np.unique(y):
    per = np.bincount(f[y == c], minlength=k)
    assert per.min() >= 1 and per.max() - per.min() <= 1, (c, per)


def test_fold_members_are_shuffled_not_contiguous():
  y = np.zeros(100, int)
  f = folds.assign_folds(y, 4, seed=0)
  # Dealt after a shuffle: fold 0 is not simply the rows 0, 4, 8, ...
  assert not np.array_equal(np.flatnonzero(f == 0), np.arange(0, 100, 4))


def test_too_many_folds_names_the_key_and_the_fix():
  y = np.array([0] * 10 + [1] * 3 + [2] * 10)
  with pytest.raises(ValueError, match=r"detection\.crossfit\.num_folds=4.*"
                     r"class 1.*set detection\.crossfit\.num_folds <= 3"):
    folds.assign_folds(y, 4, seed=0)
  folds.assign_folds(y, 3, seed=0)  # the limit itself is fine


def test_fewer_than_two_folds_is_an_error():
  with pytest.raises(ValueError, match=r"detection\.crossfit\.num_folds=1"):
    folds.assign_folds(np.array([0, 1, 0, 1]), 1, seed=0)
