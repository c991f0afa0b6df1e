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

  def encode(self, x0, t, label=None, t_max=None, refine=0):
    z = jnp.zeros((x0.shape[0], self.a.shape[0]))
    return z, jnp.arctanh(jnp.clip(x0, -0.999, 0.999))

  def decode(self, z, x_T, t, remat=False, t_max=None):
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
  for k, v in dict(identity=0.0, structural=0.0, perceptual=1.0, pixel=1.0,
                   influence=0.0).items():
    c.losses[k] = losses.get(k, v)
  c.correction.num_steps = 15
  c.correction.lr = 0.05
  # These tests use a tiny unconditional DiffAE (the age demo's default
  # route is conditional; the conditional tests set it themselves).
  c.correction.route = "latent"
  c.diffae.num_classes = 0
  c.diffae.guidance_scale = 1.0
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
  out = engine.Corrector(ToyDiffAE(), _guidance(), _config(influence=5.0))(
      x, np.zeros(4, np.int32))
  assert np.all(out["after_p_high"] < out["before_p_high"] - 0.01)
  assert "trace_influence" in out


def test_weighted_term_without_network_is_an_error():
  import pytest
  with pytest.raises(KeyError, match="no network"):
    engine.Corrector(ToyDiffAE(), _guidance(), _config(identity=1.0))


def test_sharded_batch_matches_unsharded_per_sample():
  # 8 fake devices: a batch of 8 is split over them; 4 runs unsharded.
  x8 = np.asarray(jax.random.uniform(jax.random.key(5), (8, 8, 8, 3),
                                     minval=-0.5, maxval=0.8))
  c = _config(influence=2.0)
  out8 = engine.Corrector(ToyDiffAE(), _guidance(), c)(x8, np.zeros(8,
                                                                   np.int32))
  out4 = engine.Corrector(ToyDiffAE(), _guidance(), c)(x8[:4], np.zeros(
      4, np.int32))
  np.testing.assert_allclose(out8["image"][:4], out4["image"], atol=1e-5)


class ToyConditionalDiffAE(ToyDiffAE):
  """The toy generator plus a per-class brightness offset under guidance."""
  num_classes = 2

  def __init__(self):
    super().__init__()
    self.calls = []

  def encode(self, x0, t, label=None, t_max=None, refine=0):
    self.calls.append(("encode", label, t_max))
    return super().encode(x0, t)

  def decode(self, z, x_T, t, remat=False, label=None, guidance_scale=1.0,
             t_max=None):
    x = super().decode(z, x_T, t)
    if label is None:
      return x
    offset = jnp.where(jnp.asarray(label) == 1, 0.3, -0.3)
    return jnp.tanh(jnp.arctanh(jnp.clip(x, -0.999, 0.999))
                    + guidance_scale * offset[:, None, None, None])


def test_conditional_route_decodes_under_the_assigned_label():
  x = _images()
  c = _config()
  c.correction.route = "conditional"
  c.correction.num_steps = 0
  c.diffae.guidance_scale = 2.0
  c.diffae.t_max = 600
  toy = ToyConditionalDiffAE()
  labels = np.array([0, 1, 0, 1], np.int32)
  out = engine.Corrector(toy, _guidance(), c)(x, labels)
  # The reconstruction is the null-class round trip (the original); the
  # start is the guided decode: darker for class 0, brighter for class 1.
  np.testing.assert_allclose(out["reconstruction"], x, atol=2e-3)
  delta = (out["start"] - x).mean(axis=(1, 2, 3))
  assert np.all(delta[labels == 1] > 0.1) and np.all(delta[labels == 0] < -0.1)
  # Inversion under the null class by default, to t_max.
  assert toy.calls[0] == ("encode", None, 600)


def test_route_errors_name_the_key_and_the_fix():
  import pytest
  c = _config()
  c.correction.route = "conditional"
  with pytest.raises(ValueError, match="correction.route='conditional'.*"
                     "unconditional"):
    engine.Corrector(ToyDiffAE(), _guidance(), c)
  c.correction.route = "zshift"
  with pytest.raises(ValueError, match="probe"):
    engine.Corrector(ToyDiffAE(), _guidance(), c)
  c.correction.route = "sideways"
  with pytest.raises(ValueError, match="correction.route='sideways'"):
    engine.Corrector(ToyDiffAE(), _guidance(), c)
  c.correction.route = "conditional"
  c.diffae.guidance_scale = float("nan")
  with pytest.raises(ValueError, match="guidance_scale"):
    engine.Corrector(ToyConditionalDiffAE(), _guidance(), c)


def test_zshift_route_starts_from_the_shifted_codes():
  from diffinf_jax.correction import latent_shift
  x = _images()
  c = _config()
  c.correction.route = "zshift"
  c.correction.num_steps = 0
  c.correction.z_shift = 2.0
  d = 6
  probe = latent_shift.LinearProbe(
      mean=jnp.zeros(d), std=jnp.ones(d),
      weight=jnp.zeros((d, 2)).at[0, 1].set(1.0).at[0, 0].set(-1.0),
      bias=jnp.zeros(2))
  labels = np.array([1, 1, 0, 0], np.int32)
  out = engine.Corrector(ToyDiffAE(), _guidance(), c, probe=probe)(x, labels)
  # p(y) = sigmoid(2 s) along the path reaches 0.9 at s = ln(9) / 2 = 1.099:
  # the first whole step of 2 / 32 beyond it is 18 steps = 1.125.
  np.testing.assert_allclose(out["z_shift"], 1.125, atol=1e-5)
  assert np.abs(out["start"] - out["reconstruction"]).max() > 1e-3
  # No optimisation steps: the corrected image is the start.
  np.testing.assert_allclose(out["image"], out["start"], atol=1e-6)
