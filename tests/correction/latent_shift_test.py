"""The linear probe on z_sem and the minimal shift toward a class."""

import jax.numpy as jnp
import numpy as np
import pytest

from diffinf_jax.correction import latent_shift


def _codes(n=300, d=5, seed=0):
  """Three classes separated along the first coordinate."""
  rng = np.random.default_rng(seed)
  labels = np.arange(n) % 3
  z = rng.normal(size=(n, d))
  z[:, 0] += 3.0 * (labels - 1)
  return z.astype(np.float32), labels


def test_probe_separates_the_classes_and_directions_are_unit():
  z, y = _codes()
  probe = latent_shift.fit_probe(z, y, 3)
  acc = np.mean(np.asarray(latent_shift.probe_logits(probe, z)).argmax(1)
                == y)
  assert acc > 0.9
  d = np.asarray(latent_shift.class_directions(probe))
  np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0, rtol=1e-6)
  # Class 2 lies at +x0, class 0 at -x0: their directions point that way.
  assert d[2, 0] > 0.5 and d[0, 0] < -0.5


def test_shift_is_zero_when_the_label_already_shows():
  z, y = _codes()
  probe = latent_shift.fit_probe(z, y, 3)
  p = np.array(jnp.exp(latent_shift.probe_logits(probe, z)))
  p /= p.sum(1, keepdims=True)
  confident = p[np.arange(len(y)), y] >= 0.9
  z2, s = latent_shift.shift_toward(probe, jnp.asarray(z), jnp.asarray(y),
                                    4.0, 0.9)
  s = np.asarray(s)
  np.testing.assert_array_equal(s[confident], 0.0)
  np.testing.assert_array_equal(np.asarray(z2)[confident], z[confident])


def test_shift_reaches_the_target_class_and_is_minimal():
  z, y = _codes()
  probe = latent_shift.fit_probe(z, y, 3)
  target = jnp.asarray((y + 1) % 3)

  def p_target(codes):
    p = np.array(jnp.exp(latent_shift.probe_logits(probe, codes)))
    return (p / p.sum(1, keepdims=True))[np.arange(len(y)), target]

  z2, s = latent_shift.shift_toward(probe, jnp.asarray(z), target, 20.0,
                                    0.9, num_steps=200)
  assert np.all(p_target(z2) >= 0.9)
  steps = np.round(np.asarray(s) / 0.1).astype(int)
  np.testing.assert_allclose(np.asarray(s), steps * 0.1, atol=1e-4)
  assert np.sum(steps > 0) > 100
  # Minimal: one step fewer along the same path falls short of 0.9.
  for k in np.unique(steps[steps > 0]):
    prefix, _ = latent_shift.shift_toward(probe, jnp.asarray(z), target,
                                          0.1 * (k - 1), 1.01,
                                          num_steps=max(k - 1, 1))
    if k == 1:
      prefix = jnp.asarray(z)
    assert np.all(p_target(prefix)[steps == k] < 0.9)


def test_two_classes_and_bad_labels():
  z, y = _codes()
  keep = y < 2
  probe = latent_shift.fit_probe(z[keep], y[keep], 2)
  assert probe.weight.shape == (5, 2)
  acc = np.mean(np.asarray(latent_shift.probe_logits(probe, z[keep])).argmax(
      1) == y[keep])
  assert acc > 0.9
  with pytest.raises(ValueError, match="class counts"):
    latent_shift.fit_probe(z[keep], y[keep], 3)
  with pytest.raises(ValueError, match="NaN"):
    latent_shift.fit_probe(np.full_like(z, np.nan), y, 3)
