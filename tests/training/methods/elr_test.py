"""ELR: target update (hand formula), regulariser gradient, tiny run."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffinf_jax.training.methods import elr


def test_target_update_matches_hand_formula():
  targets = jnp.zeros((4, 2)).at[1].set(jnp.array([0.5, 0.5]))
  probs = jnp.array([[0.8, 0.2], [0.6, 0.4], [0.3, 0.7]])
  rows = jnp.array([1, 2, 0])
  valid = jnp.array([True, True, False])
  new = np.asarray(elr.update_targets(targets, rows, probs, valid, beta=0.7))
  np.testing.assert_allclose(new[1], 0.7 * 0.5 + 0.3 * np.array([0.8, 0.2]))
  np.testing.assert_allclose(new[2], 0.3 * np.array([0.6, 0.4]))
  np.testing.assert_array_equal(new[0], 0.0)  # the padding row wrote nothing
  # Unnormalised (clipped) probabilities are renormalised before averaging.
  new2 = np.asarray(elr.update_targets(targets, jnp.array([2]),
                                       jnp.array([[0.5, 1.5]]),
                                       jnp.array([True]), beta=0.7))
  np.testing.assert_allclose(new2[2], 0.3 * np.array([0.25, 0.75]))


def test_loss_value_and_gradient_pulls_towards_target():
  logits = jnp.log(jnp.array([[0.8, 0.2]]))
  t = jnp.array([[0.9, 0.1]])
  per = float(elr.elr_per_example(logits, jnp.array([0]), t, lam=3.0)[0])
  assert per == pytest.approx(-np.log(0.8) + 3 * np.log(1 - 0.74), rel=1e-5)
  # Label 1 disagrees with the target (class 0): the regulariser's gradient
  # alone raises the target class's logit (descent direction = -grad).
  reg = lambda z: (elr.elr_per_example(z, jnp.array([1]), t, lam=3.0) -
                   elr.elr_per_example(z, jnp.array([1]), t, lam=0.0))[0]
  g = np.asarray(jax.grad(reg)(logits))[0]
  assert g[0] < 0 < g[1]
  # Hand gradient of log(1 - <t, softmax(z)>) w.r.t. z.
  p = np.array([0.8, 0.2])
  s = t[0] @ p
  hand = 3.0 * (-(p * np.asarray(t[0]) - p * s) / (1 - s))
  np.testing.assert_allclose(g, hand, rtol=1e-4)
  # The target receives no gradient.
  gt = jax.grad(
      lambda tt: elr.elr_per_example(logits, jnp.array([1]), tt)[0])(t)
  np.testing.assert_array_equal(np.asarray(gt), 0.0)


def test_suspected_wrong_labels():
  targets = np.array([[0.9, 0.1], [0.2, 0.8], [0.0, 0.0]])  # last: sink row
  np.testing.assert_array_equal(elr.suspected_wrong(targets, np.array([0, 0])),
                                [False, True])


def test_tiny_run_is_evaluable(tiny_run):
  w, ds, _ = tiny_run("elr")
  saved = np.load(os.path.join(w, "m", "train", "elr_targets.npz"))
  n = len(ds.arrays("train", raw=True)["label"])
  assert saved["targets"].shape == (n, 3)
  # Every row was seen at most once: entries sum to 0 (unseen) or 1 - beta.
  sums = saved["targets"].sum(1)
  assert np.all(np.isclose(sums, 0) | np.isclose(sums, 1 - elr.BETA,
                                                 rtol=1e-4))
