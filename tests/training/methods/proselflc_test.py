"""ProSelfLC: epsilon schedule and target construction."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffinf_jax.training.methods import proselflc


def test_global_trust_schedule():
  b = proselflc.EXP_BASE
  assert b == 6.0 and proselflc.TRANSIT == 0.5
  assert float(proselflc.global_trust(0.5)) == pytest.approx(0.5)
  assert float(proselflc.global_trust(0.0)) == pytest.approx(
      1 / (1 + np.exp(3)))          # 0.0474
  assert float(proselflc.global_trust(0.25)) == pytest.approx(
      1 / (1 + np.exp(1.5)))        # 0.182
  assert float(proselflc.global_trust(1.0)) == pytest.approx(
      1 / (1 + np.exp(-3)))         # 0.953


def test_local_trust_values():
  uniform = jnp.full((1, 4), 0.25)
  onehot = jnp.array([[1.0, 0, 0, 0]])
  assert float(proselflc.local_trust(uniform)[0]) == pytest.approx(0, abs=1e-6)
  assert float(proselflc.local_trust(onehot)[0]) == pytest.approx(1, abs=1e-6)
  p = np.array([0.5, 0.25, 0.25])
  h = -(p * np.log(p)).sum()
  assert float(proselflc.local_trust(jnp.asarray(p)[None])[0]) == (
      pytest.approx(1 - h / np.log(3), rel=1e-6))


def test_target_mixes_label_and_prediction():
  logits = jnp.array([[2.0, 0.0, -1.0]])
  q, eps = proselflc.corrected_target(logits, jnp.array([1]),
                                      jnp.array([0.75]))
  p = np.asarray(jax.nn.softmax(logits))
  e = float(proselflc.global_trust(0.75)) * float(proselflc.local_trust(
      jnp.asarray(p))[0])
  np.testing.assert_allclose(float(eps[0]), e, rtol=1e-6)
  np.testing.assert_allclose(np.asarray(q[0]),
                             (1 - e) * np.eye(3)[1] + e * p[0], rtol=1e-6)
  np.testing.assert_allclose(np.asarray(q).sum(), 1.0, rtol=1e-6)
  # Early in training the target is mostly the given label.
  q0, _ = proselflc.corrected_target(logits, jnp.array([1]),
                                     jnp.array([0.0]))
  assert float(q0[0, 1]) > 0.97


def test_loss_gradient_has_detached_target():
  logits = jnp.array([[2.0, 0.0, -1.0]])
  batch = {"label": jnp.array([1]), "progress": jnp.array([0.9])}
  g = np.asarray(jax.grad(
      lambda z: proselflc.per_example_loss(z, batch)[0])(logits))[0]
  q, _ = proselflc.corrected_target(logits, batch["label"],
                                    batch["progress"])
  # d H(q, softmax(z)) / dz = softmax(z) - q when q is a constant.
  np.testing.assert_allclose(g, np.asarray(jax.nn.softmax(logits))[0] -
                             np.asarray(q)[0], atol=1e-6)
