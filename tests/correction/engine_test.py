"""The corrector on toy networks: reconstruction-only keeps the image, the
influence term lowers p_high, NaN samples are isolated."""

import jax
import jax.numpy as jnp
import numpy as np

from diffinf_jax import configuration
from diffinf_jax.correction import engine


class ToyDiffAE:
  """x0 = tanh(x_T + A z_sem): an invertible-enough toy generator."""

  def __init__(self, hw=8, d=6):
    self.a = jax.random.normal(jax.random.key(3), (d, hw * hw * 3)) * 0.1
    self.hw = hw

  def encode(self, x0, t):
    z = jnp.zeros((x0.shape[0], self.a.shape[0]))
    return z, jnp.arctanh(jnp.clip(x0, -0.999, 0.999))

  def decode(self, z, x_T, t, remat=False):
    shift = (z @ self.a).reshape(x_T.shape)
    return jnp.tanh(x_T + shift)


def _guidance(bias_to_bright=True):
  def lpips(x0, x1):
    return jnp.mean((x0 - x1) ** 2, axis=(1, 2, 3))

  def probs(x):
    m = jnp.mean(x, axis=(1, 2, 3))
    return jax.nn.softmax(jnp.stack([m * 4, -m * 4], -1))

  def p_high(x, y):  # "high influence" when the image is bright
    return jax.nn.sigmoid(8 * jnp.mean(x, axis=(1, 2, 3)))
  return engine.Guidance(lpips=lpips, classifier_probs=probs, p_high=p_high)


def _config(**losses):
  c = configuration.load_config_file("configs/demo.py:tiny")
  for k, v in dict(w_id=0.0, w_reg=1.0, lambda_struct=0.0, lambda_perc=1.0,
                   lambda_rec=1.0, w_si=0.0).items():
    c.losses[k] = losses.get(k, v)
  c.correction.num_steps = 15
  c.correction.lr = 0.05
  return c


def _images(b=4):
  return np.asarray(jax.random.uniform(jax.random.key(0), (b, 8, 8, 3),
                                       minval=-0.5, maxval=0.8))


def test_reconstruction_only_keeps_the_image():
  x = _images()
  out = engine.Corrector(ToyDiffAE(), _guidance(), _config())(
      x, np.zeros(4, np.int32))
  assert out["image"].shape == x.shape
  assert np.all(out["after_lpips"] < 1e-3)
  assert out["trace_total"].shape == (16, 4)
  assert np.all(out["alive"])


def test_influence_term_lowers_p_high():
  x = _images()
  out = engine.Corrector(ToyDiffAE(), _guidance(), _config(w_si=5.0))(
      x, np.zeros(4, np.int32))
  assert np.all(out["after_p_high"] < out["before_p_high"] - 0.01)
  assert "trace_influence" in out


def test_weighted_term_without_network_is_an_error():
  import pytest
  with pytest.raises(KeyError, match="no network"):
    engine.Corrector(ToyDiffAE(), _guidance(), _config(w_id=1.0))


def test_sharded_batch_matches_unsharded_per_sample():
  # 8 fake devices: a batch of 8 is split over them; 4 runs unsharded.
  x8 = np.asarray(jax.random.uniform(jax.random.key(5), (8, 8, 8, 3),
                                     minval=-0.5, maxval=0.8))
  c = _config(w_si=2.0)
  out8 = engine.Corrector(ToyDiffAE(), _guidance(), c)(x8, np.zeros(8,
                                                                   np.int32))
  out4 = engine.Corrector(ToyDiffAE(), _guidance(), c)(x8[:4], np.zeros(
      4, np.int32))
  np.testing.assert_allclose(out8["image"][:4], out4["image"], atol=1e-5)
