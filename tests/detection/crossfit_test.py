"""Cross-fitting: every row is predicted by a model that never trained on it."""

import numpy as np
import pytest

from diffinf_jax.detection import crossfit
from diffinf_jax.detection import folds as folds_lib


def _memoriser(labels, num_classes, calls):
  """A model that is certain of the labels it trained on, uniform elsewhere.

  Any held-out row that was also a training row comes back one-hot, so an
  out-of-sample matrix must be uniform everywhere.
  """
  def fit_predict(train_rows, held_rows):
    calls.append((train_rows.copy(), held_rows.copy()))
    seen = set(train_rows.tolist())
    out = np.full((held_rows.size, num_classes), 1.0 / num_classes)
    for j, i in enumerate(held_rows):
      if i in seen:
        out[j] = np.eye(num_classes)[labels[i]]
    return out
  return fit_predict


def test_every_row_comes_from_a_model_that_never_trained_on_it():
  y = np.random.default_rng(0).integers(0, 3, 97)
  f = folds_lib.assign_folds(y, 4, seed=1)
  calls = []
  oos = crossfit.cross_fit(f, _memoriser(y, 3, calls), 3)
  np.testing.assert_allclose(oos.probs, 1.0 / 3)
  assert len(calls) == 4 and oos.num_folds == 4
  np.testing.assert_array_equal(oos.fold, f)
  held_all = np.concatenate([h for _, h in calls])
  np.testing.assert_array_equal(np.sort(held_all), np.arange(97))
  for k, (train, held) in enumerate(calls):
    assert not set(train) & set(held)
    # Row i's probabilities come from the call of its own fold.
    assert np.all(oos.fold[held] == k)
    # Every other row trained that model.
    np.testing.assert_array_equal(np.sort(np.concatenate([train, held])),
                                  np.arange(97))


def test_excluded_rows_never_train_but_are_predicted():
  y = np.random.default_rng(1).integers(0, 2, 40)
  f = folds_lib.assign_folds(y, 4, seed=0)
  exclude = np.zeros(40, bool)
  exclude[[3, 7, 20]] = True
  calls = []
  oos = crossfit.cross_fit(f, _memoriser(y, 2, calls), 2, exclude)
  for train, _ in calls:
    assert not set(train) & {3, 7, 20}
  assert np.all(np.isfinite(oos.probs))


@pytest.mark.parametrize("bad, match", [
    (lambda h: np.ones((h.size, 2)) / 2, "shape"),
    (lambda h: np.full((h.size, 3), np.nan), "non-finite"),
    (lambda h: np.ones((h.size, 3)), "sum to 1"),
])
def test_bad_fit_predict_output_is_an_error(bad, match):
  f = np.array([0, 1, 0, 1])
  with pytest.raises(ValueError, match=match):
    crossfit.cross_fit(f, lambda tr, he: bad(he), 3)


def _blobs(n=120, d=5, seed=0):
  rng = np.random.default_rng(seed)
  y = np.arange(n) % 3
  x = rng.normal(size=(n, d)) + 3.0 * np.eye(3, d)[y]
  return x, y


def test_logistic_standardises_with_training_rows_only():
  # If the mean/std came from all rows, changing one held-out row's
  # features would move the predictions of the other held-out rows.
  x, y = _blobs()
  f = folds_lib.assign_folds(y, 3, seed=0)
  base = crossfit.cross_fit_logistic(x, y, f, 3)
  j = np.flatnonzero(f == 0)[0]
  x2 = x.copy()
  x2[j] = 1e3
  moved = crossfit.cross_fit_logistic(x2, y, f, 3)
  others = (f == 0) & (np.arange(len(y)) != j)
  np.testing.assert_allclose(moved.probs[others], base.probs[others],
                             rtol=1e-6, atol=1e-9)
  # The training rows of the other folds do see it (a real dependence).
  assert not np.allclose(moved.probs[f == 1], base.probs[f == 1])


def test_logistic_is_accurate_deterministic_and_pads_missing_classes():
  x, y = _blobs()
  f = folds_lib.assign_folds(y, 3, seed=0)
  oos = crossfit.cross_fit_logistic(x, y, f, 4)
  assert oos.probs.shape == (120, 4)
  np.testing.assert_array_equal(oos.probs[:, 3], 0.0)  # class 3 never seen
  assert np.mean(oos.probs.argmax(1) == y) > 0.9
  np.testing.assert_array_equal(
      oos.probs, crossfit.cross_fit_logistic(x, y, f, 4).probs)


def test_feature_blocks():
  from diffinf_jax.detection import features
  maps = np.arange(2 * 4 * 4 * 3, dtype=np.float64).reshape(2, 4, 4, 3)
  pooled = features.grid_pool(maps, 2)
  assert pooled.shape == (2, 12)
  # Cell (0, 0) of channel 0 of image 0: mean of rows 0-1, columns 0-1.
  assert pooled[0, 0] == np.mean(maps[0, :2, :2, 0])
  np.testing.assert_array_equal(features.grid_pool(maps, 1)[:, :3],
                                maps.mean((1, 2)))
  assert features.flatten_pixels(maps).shape == (2, 48)
  with pytest.raises(ValueError, match="grid"):
    features.grid_pool(maps, 3)
