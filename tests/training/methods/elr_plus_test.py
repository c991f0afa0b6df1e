"""ELR+: mixup, weight averaging and its ramp, the loss, a tiny run."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffinf_jax.training.methods import elr_plus


def test_mixup_mixes_inputs_and_labels_consistently():
  lam, perm = elr_plus.mixup_params(jax.random.key(0), 6)
  assert 0.5 <= float(lam) <= 1.0
  assert sorted(np.asarray(perm).tolist()) == list(range(6))
  a = jnp.arange(6.0)[:, None] * jnp.ones((6, 2))
  np.testing.assert_allclose(np.asarray(elr_plus.mix(a, lam, perm)),
                             float(lam) * np.asarray(a) + (1 - float(lam)) *
                             np.asarray(a)[np.asarray(perm)], rtol=1e-6)


def test_weight_averaging():
  ema = {"w": jnp.zeros(2), "b": jnp.full(3, 2.0)}
  new = elr_plus.ema_update(ema, {"w": jnp.ones(2), "b": jnp.zeros(3)},
                            decay=0.9)
  np.testing.assert_allclose(np.asarray(new["w"]), 0.1, rtol=1e-6)
  np.testing.assert_allclose(np.asarray(new["b"]), 1.8, rtol=1e-6)
  # Repeated updates towards fixed weights converge geometrically.
  e = {"w": jnp.zeros(1)}
  for _ in range(10):
    e = elr_plus.ema_update(e, {"w": jnp.ones(1)}, decay=0.5)
  assert float(e["w"][0]) == pytest.approx(1 - 0.5 ** 10)


def test_ema_decay_ramp_and_short_run_cap():
  assert elr_plus.effective_decay(10 ** 6) == pytest.approx(elr_plus.EMA)
  assert elr_plus.effective_decay(100) == pytest.approx(0.9)
  total, dmax = 100, 0.9
  ramp = elr_plus.RAMP_FRACTION * total
  assert float(elr_plus.ramped_decay(0, total, dmax)) == pytest.approx(
      dmax * np.exp(-5))
  assert float(elr_plus.ramped_decay(ramp / 2, total, dmax)) == pytest.approx(
      dmax * np.exp(-5 * 0.25), rel=1e-5)
  assert float(elr_plus.ramped_decay(total, total, dmax)) == pytest.approx(dmax)


def test_loss_is_soft_ce_plus_elr_term():
  logits = jnp.log(jnp.array([[0.6, 0.3, 0.1]]))
  y = jnp.array([[0.7, 0.3, 0.0]])
  q = jnp.array([[0.2, 0.5, 0.3]])
  per = float(elr_plus.elr_plus_loss(logits, y, q, lam=3.0)[0])
  ce = -(0.7 * np.log(0.6) + 0.3 * np.log(0.3))
  assert per == pytest.approx(ce + 3 * np.log(1 - (0.12 + 0.15 + 0.03)),
                              rel=1e-5)


def test_tiny_run_is_evaluable(tiny_run):
  tiny_run("elr_plus")
