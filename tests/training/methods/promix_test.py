"""ProMix: per-class selection counts, matched high confidence, subset
mixup pairs, class priors and debiased pseudo-labels, a tiny run."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffinf_jax.training.methods import promix


def test_classwise_selection_counts():
  labels = np.array([0] * 10 + [1] * 4 + [2] * 6)
  losses = np.random.default_rng(0).random(20)
  # k = ceil(0.5 * 20 / 3) = 4 per class, capped by the class size.
  keep = promix.classwise_selection(losses, labels, 3, ratio=0.5)
  assert [int(keep[labels == c].sum()) for c in range(3)] == [4, 4, 4]
  for c in range(3):
    idx = np.flatnonzero(labels == c)
    assert losses[idx][keep[idx]].max() == np.sort(losses[idx])[3]
  # k = ceil(0.7 * 20 / 3) = 5: class 1 has only 4.
  keep = promix.classwise_selection(losses, labels, 3, ratio=0.7)
  assert [int(keep[labels == c].sum()) for c in range(3)] == [5, 4, 5]
  # At least one per present class; none for an empty class.
  np.testing.assert_array_equal(
      promix.class_budgets(labels, 4, ratio=0.01), [1, 1, 1, 0])


def test_progressive_ratio():
  assert promix.rho(0, 0.7, 4.0) == pytest.approx(promix.RHO_START)
  assert promix.rho(2, 0.7, 4.0) == pytest.approx((promix.RHO_START + 0.7) / 2)
  assert promix.rho(9, 0.7, 4.0) == pytest.approx(0.7)


def test_matched_high_confidence():
  probs = jnp.array([[0.995, 0.005], [0.6, 0.4], [0.002, 0.998],
                     [0.999, 0.001]])
  labels = jnp.array([0, 0, 1, 1])
  np.testing.assert_array_equal(
      np.asarray(promix.matched_high_confidence(probs, labels, tau=0.99)),
      [True, False, True, False])


def test_subset_pairs_stay_inside_the_subset():
  keep = jnp.array([True, False, True, True, False, True, False, True])
  pair = np.asarray(promix.subset_pairs(keep, jax.random.key(3)))
  k = np.asarray(keep)
  assert np.all(k[pair[k]])                 # partners are flagged rows
  assert sorted(pair[k]) == sorted(np.flatnonzero(k))  # a permutation
  assert np.all(pair[k] != np.flatnonzero(k))          # no self-pairs
  np.testing.assert_array_equal(pair[~k], np.flatnonzero(~k))


def test_prior_ema_and_debiased_pseudo_labels():
  prior = jnp.full(2, 0.5)
  probs = jnp.array([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8]])
  part = jnp.array([True, True, False])
  new = np.asarray(promix.update_prior(prior, probs, part, 0.9))
  np.testing.assert_allclose(new, 0.9 * 0.5 + 0.1 * np.array([0.8, 0.2]),
                             rtol=1e-6)
  same = promix.update_prior(prior, probs, jnp.zeros(3, bool), 0.9)
  np.testing.assert_array_equal(np.asarray(same), 0.5)
  # Debiasing moves the pseudo-label away from the over-predicted class.
  logits = jnp.log(jnp.array([[0.6, 0.4]]))
  q = np.asarray(promix.debiased_pseudo_labels(
      logits, jnp.array([0.8, 0.2]), alpha_pl=1.0, temperature=1.0))
  np.testing.assert_allclose(q[0], np.array([0.6 / 0.8, 0.4 / 0.2]) /
                             (0.6 / 0.8 + 0.4 / 0.2), rtol=1e-5)
  sharp = np.asarray(promix.debiased_pseudo_labels(
      logits, jnp.array([0.5, 0.5]), alpha_pl=1.0, temperature=0.5))
  np.testing.assert_allclose(sharp[0], np.array([0.36, 0.16]) / 0.52,
                             rtol=1e-5)


def test_schedule_values():
  s0 = promix.schedule(0, 12, 10)
  assert bool(s0["all_clean"]) and float(s0["w"]) == 0
  s = promix.schedule(12, 12, 10)
  assert not bool(s["all_clean"])
  assert float(s["w"]) == 1.0 and float(s["beta"]) == pytest.approx(0.1)
  # The priors average over ~8.5% of the run: 1e4 / 117,600 of 120 steps.
  assert float(s["momentum"]) == pytest.approx(1 - 1 / (120 * 1e4 / 117600),
                                               rel=1e-5)


def test_tiny_run_is_evaluable(tiny_run):
  tiny_run("promix", epochs=2)  # Epoch 0 pre-trains, epoch 1 selects.
