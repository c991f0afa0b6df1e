"""Small-loss selection keeps exactly the R(T) fraction of valid rows."""

import jax.numpy as jnp
import numpy as np
import pytest

from diffinf_jax.training.methods import small_loss


def test_keep_fraction_schedule():
  ramp = small_loss.RAMP_FRACTION
  assert float(small_loss.keep_fraction(0.0, 0.3)) == 1.0
  assert float(small_loss.keep_fraction(ramp / 2, 0.3)) == pytest.approx(0.85)
  assert float(small_loss.keep_fraction(ramp, 0.3)) == pytest.approx(0.7)
  assert float(small_loss.keep_fraction(0.9, 0.3)) == pytest.approx(0.7)


@pytest.mark.parametrize("fraction,n_valid", [(0.7, 10), (0.5, 7), (1.0, 4)])
def test_mask_keeps_exact_count_of_smallest(fraction, n_valid):
  rng = np.random.default_rng(0)
  per = jnp.asarray(rng.random(12))
  valid = jnp.arange(12) < n_valid
  keep = np.asarray(small_loss.small_loss_mask(per, valid, fraction))
  k = round(fraction * n_valid)
  assert keep.sum() == k and not keep[n_valid:].any()
  kept_max = np.asarray(per)[keep].max() if k else -np.inf
  dropped = np.asarray(per)[:n_valid][~keep[:n_valid]]
  assert np.all(dropped >= kept_max)


def test_loss_zero_on_dropped_rows_and_rescaled():
  logits = jnp.zeros((4, 3))
  batch = {"label": jnp.array([0, 1, 2, 0]), "mask": jnp.ones(4, bool),
           "progress": jnp.full((4,), 0.9)}
  out = np.asarray(small_loss.make_loss(0.5)(logits, batch))
  assert (out == 0).sum() == 2  # R = 0.5 of 4
  np.testing.assert_allclose(out.sum() / 4, np.log(3), rtol=1e-6)
