"""Label noise: exact counts, never-the-same-label flips, statistics."""

import numpy as np
import pytest

from diffinf_jax.data import noise


@pytest.mark.parametrize("n,k,rate", [(1000, 3, 0.3), (997, 4, 0.2),
                                      (10, 2, 0.25), (50, 4, 0.0)])
def test_symmetric_exact_count_and_other_class(n, k, rate):
  clean = np.random.default_rng(1).integers(0, k, n)
  noisy, flipped = noise.inject_noise(clean, k, rate, seed=7)
  assert flipped.sum() == round(rate * n)
  assert np.all(noisy[flipped] != clean[flipped])
  assert np.all(noisy[~flipped] == clean[~flipped])
  assert noisy.min() >= 0 and noisy.max() < k


def test_symmetric_targets_are_uniform_over_other_classes():
  clean = np.zeros(60000, np.int64)
  noisy, flipped = noise.inject_noise(clean, 4, 0.5, seed=0)
  counts = np.bincount(noisy[flipped], minlength=4)
  assert counts[0] == 0
  # 30000 draws over 3 classes: each within 3% of 10000.
  np.testing.assert_allclose(counts[1:], 10000, rtol=0.03)


def test_pair_noise_moves_to_next_class():
  clean = np.arange(30) % 3
  noisy, flipped = noise.inject_noise(clean, 3, 0.4, seed=3, kind="pair")
  assert flipped.sum() == 12
  np.testing.assert_array_equal(noisy[flipped], (clean[flipped] + 1) % 3)


def test_same_seed_same_noise_other_seed_differs():
  clean = np.random.default_rng(0).integers(0, 3, 500)
  a = noise.inject_noise(clean, 3, 0.3, seed=5)[0]
  b = noise.inject_noise(clean, 3, 0.3, seed=5)[0]
  c = noise.inject_noise(clean, 3, 0.3, seed=6)[0]
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5])
def test_rate_out_of_range_raises(rate):
  with pytest.raises(ValueError, match="noise rate"):
    noise.inject_noise(np.zeros(10, int), 3, rate, seed=0)


def test_label_out_of_range_raises():
  with pytest.raises(ValueError, match="label 5 out of range"):
    noise.inject_noise(np.array([0, 1, 5]), 3, 0.3, seed=0)


def test_statistics():
  clean = np.array([0, 0, 0, 0, 1, 1, 2, 2])
  noisy = np.array([0, 1, 2, 0, 1, 0, 2, 2])
  s = noise.noise_statistics(clean, noisy, 3, 0.25)
  assert s["num_train"] == 8 and s["num_flipped"] == 3
  assert s["rate_realised"] == pytest.approx(3 / 8)
  np.testing.assert_allclose(s["per_class_rate"], [0.5, 0.5, 0.0])
  np.testing.assert_allclose(s["transition_matrix"][0], [0.5, 0.25, 0.25])
  np.testing.assert_allclose(np.sum(s["transition_matrix"], axis=1), 1.0)
