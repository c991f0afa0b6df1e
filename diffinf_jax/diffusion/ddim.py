"""Deterministic DDIM decoding and inversion (eta = 0), as upstream DiffAE.

Notation (Song et al. 2021; DiffAE eq. 2-3):
  abar_i      alpha-bar at respaced step i (original timestep timestep_map[i])
  x0_pred     clip(sqrt(1/abar) x_t - sqrt(1/abar - 1) eps, -1, 1)
  eps_hat     (sqrt(1/abar) x_t - x0_pred) / sqrt(1/abar - 1), re-derived
              from the CLIPPED x0_pred (upstream behaviour)
  decode step x_prev = sqrt(abar_prev) x0_pred + sqrt(1 - abar_prev) eps_hat
  invert step x_next = sqrt(abar_next) x0_pred + sqrt(1 - abar_next) eps_hat

`eps_fn(x_t, t) -> eps` receives the ORIGINAL timestep t as [B] int32. All
loops are `lax.scan`s; `remat=True` wraps each step in `jax.checkpoint` so the
memory of gradients through a T-step decode does not grow with T.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from diffinf_jax.diffusion import schedules


def predict_x0_eps(x_t, eps, abar, clip: bool = True):
  """(x0_pred, eps_hat) from an eps prediction at alpha-bar `abar` (scalar)."""
  recip = jnp.sqrt(1.0 / abar)
  recipm1 = jnp.sqrt(1.0 / abar - 1.0)
  x0 = recip * x_t - recipm1 * eps
  if clip:
    x0 = jnp.clip(x0, -1.0, 1.0)
  eps_hat = (recip * x_t - x0) / recipm1
  return x0, eps_hat


def ddim_step(x_t, eps, abar, abar_prev, clip: bool = True):
  """One decoding step i -> i-1; returns (x_prev, x0_pred)."""
  x0, eps_hat = predict_x0_eps(x_t, eps, abar, clip)
  return jnp.sqrt(abar_prev) * x0 + jnp.sqrt(1.0 - abar_prev) * eps_hat, x0


def ddim_reverse_step(x_t, eps, abar, abar_next, clip: bool = True):
  """One inversion step i -> i+1; returns (x_next, x0_pred)."""
  x0, eps_hat = predict_x0_eps(x_t, eps, abar, clip)
  return jnp.sqrt(abar_next) * x0 + jnp.sqrt(1.0 - abar_next) * eps_hat, x0


def _coeffs(sched: schedules.SpacedSchedule):
  f32 = lambda a: jnp.asarray(np.asarray(a, np.float32))
  return (jnp.asarray(sched.timestep_map, jnp.int32), f32(
      sched.alphas_cumprod), f32(sched.alphas_cumprod_prev),
          f32(sched.alphas_cumprod_next))


def decode(eps_fn: Callable, x_T, num_steps: int, *, num_timesteps=1000,
           clip: bool = True, remat: bool = False, return_traj: bool = False):
  """DDIM sampling from x_T (treated as the state at the last kept step).

  Returns x0 [B, H, W, C] (and, with return_traj, the states and x0_preds
  after each step, [N, B, H, W, C], respaced index N-1 -> 0).
  """
  ts, abar, abar_prev, _ = _coeffs(schedules.spaced_schedule(
      num_steps, num_timesteps))
  b = x_T.shape[0]

  def step(x, i):
    eps = eps_fn(x, jnp.full((b,), ts[i], jnp.int32))
    x_prev, x0 = ddim_step(x, eps, abar[i], abar_prev[i], clip)
    return x_prev, (x_prev, x0) if return_traj else None

  if remat:
    step = jax.checkpoint(step)
  x, traj = jax.lax.scan(step, x_T, jnp.arange(num_steps - 1, -1, -1))
  return (x, traj) if return_traj else x


def invert(eps_fn: Callable, x0, num_steps: int, *, num_timesteps=1000,
           clip: bool = True, return_traj: bool = False):
  """Deterministic DDIM encoding x0 -> x_T (x0 is the state at t = 0)."""
  ts, abar, _, abar_next = _coeffs(schedules.spaced_schedule(
      num_steps, num_timesteps))
  b = x0.shape[0]

  def step(x, i):
    eps = eps_fn(x, jnp.full((b,), ts[i], jnp.int32))
    x_next, x0_pred = ddim_reverse_step(x, eps, abar[i], abar_next[i], clip)
    return x_next, (x_next, x0_pred) if return_traj else None

  x, traj = jax.lax.scan(step, x0, jnp.arange(num_steps))
  return (x, traj) if return_traj else x


def q_sample(x0, t, noise, num_timesteps: int = 1000):
  """Forward noising x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise; t [B]."""
  abar = jnp.asarray(np.cumprod(1.0 - schedules.linear_betas(
      num_timesteps)).astype(np.float32))[t]
  abar = abar.reshape((-1,) + (1,) * (x0.ndim - 1))
  return jnp.sqrt(abar) * x0 + jnp.sqrt(1.0 - abar) * noise
