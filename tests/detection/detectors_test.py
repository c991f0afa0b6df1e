"""Detector scores against hand-computed values and rankings."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from diffinf_jax.detection import checkpoints
from diffinf_jax.detection import detectors


def test_self_influence_sums_the_selected_checkpoints():
  per = np.array([[4.0, 1.0, 2.0],
                  [0.5, 3.0, 0.5],
                  [0.1, 0.1, 5.0]])
  np.testing.assert_allclose(detectors.self_influence(per), [4.6, 4.1, 7.5])
  first = checkpoints.select_checkpoints(3, "first_k", first_k=1)
  np.testing.assert_allclose(detectors.self_influence(per, first),
                             [4.0, 1.0, 2.0])
  assert np.argsort(-detectors.self_influence(per, first)).tolist() == [0, 2, 1]


def test_last_layer_equals_the_gradient_norm_of_a_dense_layer():
  rng = np.random.default_rng(0)
  a = rng.normal(size=(6, 5)).astype(np.float32)
  w = rng.normal(size=(5, 3)).astype(np.float32)
  b = rng.normal(size=3).astype(np.float32)
  y = np.array([0, 1, 2, 2, 1, 0])

  def loss(params, ai, yi):
    return optax.softmax_cross_entropy_with_integer_labels(
        ai @ params[0] + params[1], yi)

  grads = jax.jit(jax.vmap(jax.grad(loss), (None, 0, 0)))((w, b), a, y)
  want = np.asarray(jnp.sum(grads[0] ** 2, (1, 2)) + jnp.sum(grads[1] ** 2, 1))
  probs = np.asarray(jax.nn.softmax(a @ w + b))
  np.testing.assert_allclose(detectors.last_layer(a, probs, y), want,
                             rtol=1e-5)
  # Two checkpoints weighted by their learning rates.
  both = detectors.last_layer(np.stack([a, a]), np.stack([probs, probs]), y,
                              [0.5, 2.0])
  np.testing.assert_allclose(both, 2.5 * want, rtol=1e-5)


def test_small_loss_ranks_the_least_probable_label_first():
  probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [1.0, 0.0]])
  y = np.array([0, 0, 1, 1])
  s = detectors.small_loss(probs, y)
  np.testing.assert_allclose(s[:3], -np.log([0.9, 0.2, 0.4]))
  assert np.isfinite(s[3])  # log(0) clipped
  assert np.argsort(-s).tolist() == [3, 1, 2, 0]


def test_ensemble_is_the_mean_of_normalised_ranks():
  a = np.array([10.0, 20.0, 30.0, 40.0])     # ranks 0, 1/3, 2/3, 1
  b = np.array([0.4, 0.3, 0.2, 0.1])         # ranks 1, 2/3, 1/3, 0
  c = np.array([1.0, 1.0, 5.0, 0.0])         # ranks 0.5, 0.5, 1, 0
  np.testing.assert_allclose(detectors.ensemble([a, b]), [0.5] * 4)
  np.testing.assert_allclose(detectors.ensemble([a, c]),
                             [0.25, 5 / 12, 5 / 6, 0.5])
  np.testing.assert_allclose(detectors.ensemble([a, c], [3, 1]),
                             [0.125, 3 / 8, 0.75, 0.75])
  with pytest.raises(ValueError, match="weights"):
    detectors.ensemble([a, c], [1, -1])


def test_checkpoint_rules():
  np.testing.assert_array_equal(checkpoints.select_checkpoints(3), [0, 1, 2])
  np.testing.assert_array_equal(
      checkpoints.select_checkpoints(4, "first_k", first_k=2), [0, 1])
  acc = [0.6, 0.75, 0.9, 0.97]
  np.testing.assert_array_equal(checkpoints.select_checkpoints(
      4, "before_fit", train_accuracy=acc, fit_threshold=0.8), [0, 1])
  np.testing.assert_array_equal(checkpoints.select_checkpoints(
      4, "before_fit", train_accuracy=acc, fit_threshold=0.99), [0, 1, 2, 3])
  # Already fitted at the first checkpoint: keep that one, not none.
  np.testing.assert_array_equal(checkpoints.select_checkpoints(
      4, "before_fit", train_accuracy=acc, fit_threshold=0.5), [0])


@pytest.mark.parametrize("kwargs, match", [
    (dict(rule="latest"), r"detection\.tracin\.checkpoints='latest'"),
    (dict(rule="first_k"), r"first_k"),
    (dict(rule="first_k", first_k=5), r"1\.\.4"),
    (dict(rule="before_fit"), r"fit_threshold"),
    (dict(rule="before_fit", train_accuracy=[0.5], fit_threshold=0.8),
     r"one per checkpoint"),
])
def test_checkpoint_rule_errors(kwargs, match):
  with pytest.raises(ValueError, match=match):
    checkpoints.select_checkpoints(4, **kwargs)
