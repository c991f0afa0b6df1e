"""Co-teaching: exchanged small-loss selections and a tiny training run."""


import jax
import jax.numpy as jnp
import numpy as np

from diffinf_jax.training.methods import coteaching


def test_exchanges_small_loss_selections():
  loss_a = jnp.array([0.1, 0.9, 0.2, 0.8, 0.5, 0.3])
  loss_b = jnp.array([0.9, 0.1, 0.8, 0.2, 0.3, 0.5])
  valid = jnp.array([True] * 5 + [False])
  train_a, train_b = coteaching.exchange_masks(loss_a, loss_b, valid, 0.6)
  # R = 0.6 of 5 valid rows = 3 rows each, chosen by the OTHER network.
  np.testing.assert_array_equal(np.asarray(train_a),
                                [False, True, False, True, True, False])
  np.testing.assert_array_equal(np.asarray(train_b),
                                [True, False, True, False, True, False])


def test_exchange_keeps_r_t_fraction_under_jit():
  rng = np.random.default_rng(1)
  fn = jax.jit(coteaching.exchange_masks)
  for frac, n_valid in ((1.0, 16), (0.85, 13), (0.7, 16), (0.7, 9)):
    valid = jnp.arange(16) < n_valid
    a, b = fn(jnp.asarray(rng.random(16)), jnp.asarray(rng.random(16)),
              valid, jnp.float32(frac))
    for m in (a, b):
      assert int(m.sum()) == round(frac * n_valid)
      assert not np.asarray(m)[n_valid:].any()


def test_tiny_run_is_evaluable(tiny_run):
  tiny_run("coteaching")
