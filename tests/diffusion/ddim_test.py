"""DDIM: closed-form steps, scan vs loop, remat gradients, respacing."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffinf_jax.diffusion import ddim
from diffinf_jax.diffusion import schedules
from diffinf_jax.models import diffae


def test_space_timesteps_matches_upstream_rule():
  np.testing.assert_array_equal(schedules.space_timesteps(1000, 10),
                                np.arange(0, 1000, 100))
  assert schedules.space_timesteps(1000, 20)[-1] == 950
  assert schedules.space_timesteps(1000, 250)[-1] == 996
  assert schedules.space_timesteps(1000, 1000)[-1] == 999
  with pytest.raises(ValueError, match="exactly 7"):
    schedules.space_timesteps(10, 7)


def test_step_is_eq_12_with_eta_0():
  x = jnp.array([0.3, -0.2])
  eps = jnp.array([0.1, 0.5])
  abar, prev = 0.5, 0.8
  x0 = (x - np.sqrt(1 - abar) * eps) / np.sqrt(abar)  # inside [-1, 1]
  expect = np.sqrt(prev) * x0 + np.sqrt(1 - prev) * eps
  out, x0p = ddim.ddim_step(x, eps, abar, prev)
  np.testing.assert_allclose(np.asarray(out), expect, rtol=1e-6)
  np.testing.assert_allclose(np.asarray(x0p), x0, rtol=1e-6)


def test_clipping_rederives_eps():
  x, eps = jnp.array([3.0]), jnp.array([0.0])
  x0, eps_hat = ddim.predict_x0_eps(x, eps, 0.5)
  assert float(x0[0]) == 1.0
  # eps_hat is re-derived from the clipped x0, not the raw eps.
  np.testing.assert_allclose(float(eps_hat[0]),
                             (np.sqrt(2) * 3 - 1) / 1.0, rtol=1e-6)


def test_scan_equals_python_loop_and_inverse_roundtrip():
  eps_fn = lambda x, t: 0.1 * x  # an identity-like eps model
  x_T = jax.random.normal(jax.random.key(0), (2, 4, 4, 3)) * 0.5
  out = ddim.decode(eps_fn, x_T, 5)
  s = schedules.spaced_schedule(5)
  x = x_T
  for i in range(4, -1, -1):
    x, _ = ddim.ddim_step(x, eps_fn(x, None), np.float32(s.alphas_cumprod[i]),
                          np.float32(s.alphas_cumprod_prev[i]))
  np.testing.assert_allclose(np.asarray(out), np.asarray(x), atol=1e-6)


def test_remat_gradients_match():
  cfg = diffae.get_preset("tiny")
  model = diffae.create_model(cfg)
  v = diffae.init_variables(model, jax.random.key(0))
  x0 = jax.random.uniform(jax.random.key(1), (2, 16, 16, 3), minval=-1,
                          maxval=1)
  z = model.apply(v, x0, method=diffae.DiffAE.encode)
  x_T = jax.random.normal(jax.random.key(2), x0.shape)

  def loss(z, x_T, remat):
    x = ddim.decode(lambda x, t: model.apply(v, x, t, z), x_T, 3,
                    remat=remat)
    return jnp.sum(x ** 2)

  grad = jax.jit(jax.grad(loss, argnums=(0, 1)), static_argnums=2)
  g0 = grad(z, x_T, False)
  g1 = grad(z, x_T, True)
  # Recomputation changes only float32 summation order: relative error of
  # the whole gradient measured ~1e-6.
  for a, b in zip(g0, g1):
    a, b = np.asarray(a), np.asarray(b)
    assert np.linalg.norm(a - b) <= 1e-4 * np.linalg.norm(b)
  assert float(jnp.abs(g0[0]).sum()) > 0


def _toy_eps(x, t):
  """A smooth, x- and t-dependent eps model (DDIM's drift is non-trivial)."""
  s = t.astype(jnp.float32)[:, None, None, None] / 1000.0
  return 0.2 * jnp.tanh(x) * (1.0 + s) + 0.1 * s


@pytest.mark.parametrize("n", [3, 5])
def test_partial_schedule_grid_and_round_trip(n):
  tau = schedules.partial_timesteps(n, 600)
  assert tau[0] == 0 and tau[-1] == 600 and len(tau) == n + 1
  # Inside [-1, 1] with margin, so no x0 prediction is clipped.
  x0 = 0.3 * jnp.tanh(jax.random.normal(jax.random.key(0), (2, 4, 4, 3)))
  x_t = ddim.invert(_toy_eps, x0, n, t_max=600)
  # The partial state still looks like the image (abar(600) ~ 0.03 > 0).
  back = ddim.decode(_toy_eps, x_t, n, t_max=600)
  plain_err = float(jnp.abs(back - x0).max())
  assert plain_err < 0.5
  x_ref = ddim.invert(_toy_eps, x0, n, t_max=600, refine=8)
  back_ref = ddim.decode(_toy_eps, x_ref, n, t_max=600)
  # Fixed-point refinement makes every step the exact inverse of the decode.
  assert float(jnp.abs(back_ref - x0).max()) < 1e-4
  assert float(jnp.abs(back_ref - x0).max()) < 0.01 * plain_err


def test_partial_decode_is_a_python_loop_of_ddim_steps():
  x = 0.4 * jax.random.normal(jax.random.key(1), (2, 4, 4, 3))
  tau = schedules.partial_timesteps(3, 300)
  a = np.cumprod(1.0 - schedules.linear_betas())
  out = ddim.decode(_toy_eps, x, 3, t_max=300)
  for k in range(3, 0, -1):
    prev = 1.0 if k == 1 else a[tau[k - 1]]
    x, _ = ddim.ddim_step(x, _toy_eps(x, jnp.full((2,), tau[k])),
                          np.float32(a[tau[k]]), np.float32(prev))
  np.testing.assert_allclose(np.asarray(out), np.asarray(x), atol=1e-6)


def test_partial_schedule_errors():
  with pytest.raises(ValueError, match=r"diffae.t_max=3: must lie in \[5, 999"):
    schedules.partial_timesteps(5, 3)
  with pytest.raises(ValueError, match="diffae.invert_refine"):
    ddim.invert(_toy_eps, jnp.zeros((1, 2, 2, 3)), 2, refine=1)
