"""Flagged-set metrics against hand counts and scikit-learn."""

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from diffinf_jax.detection import flip_metrics


def test_hand_counted_metrics():
  score = np.array([9.0, 8.0, 7.0, 1.0, 0.5, 0.1, 0.2, 0.3, 0.4, 0.6])
  flipped = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 1], bool)
  m = flip_metrics.detection_metrics(score, flipped, num_flagged=2)
  assert m["num_flagged"] == 2 and m["num_flipped"] == 3
  assert m["precision"] == pytest.approx(1 / 2)
  assert m["recall"] == pytest.approx(1 / 3)
  assert m["precision_at_k"] == pytest.approx(2 / 3)   # top 3: 9, 8, 7
  assert m["random_precision"] == pytest.approx(0.3)
  assert m["auroc"] == pytest.approx(roc_auc_score(flipped, score))


def test_no_flips_gives_nan_not_a_number():
  m = flip_metrics.detection_metrics(np.arange(5.0), np.zeros(5, bool), 2)
  assert m["precision"] == 0.0
  for key in ("recall", "precision_at_k", "auroc"):
    assert math.isnan(m[key]), key


def test_empty_flagged_set_has_undefined_precision():
  m = flip_metrics.detection_metrics(np.arange(4.0),
                                     np.array([1, 0, 0, 1], bool), 0)
  assert math.isnan(m["precision"]) and m["recall"] == 0.0


def test_shape_mismatch_is_an_error():
  with pytest.raises(ValueError, match=r"\[N\]"):
    flip_metrics.detection_metrics(np.arange(4.0), np.zeros(3, bool), 1)
