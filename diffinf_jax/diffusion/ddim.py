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

Partial inversion (`t_max`): instead of upstream's "ddimN" grid over the
whole process, N steps on the grid tau_k = round(k t_max / N), k = 0..N.
`invert` maps x0 to the state at tau_N = t_max (eps evaluated at tau_0 ..
tau_{N-1}); `decode` maps that state back (eps at tau_N .. tau_1, the last
step lands on alpha-bar 1, i.e. returns its clipped x0_pred). A smaller t_max
keeps more of the original (layout, colours) and lets a label-conditioned
decode change less; the full schedule is `t_max=None`.

Classifier-free guidance (Ho & Salimans 2022), `guided_eps_fn`:
  eps = eps(x, t, null) + w (eps(x, t, c) - eps(x, t, null)),
w = 0: the null (unconditional) branch, w = 1: the plain conditional one.
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


def _schedule(num_steps: int, num_timesteps: int, t_max, inverse: bool):
  """(timesteps, abar, abar_prev or abar_next) per respaced step index."""
  if t_max is None:
    return _coeffs(schedules.spaced_schedule(num_steps, num_timesteps))
  tau = schedules.partial_timesteps(num_steps, int(t_max), num_timesteps)
  base = np.cumprod(1.0 - schedules.linear_betas(num_timesteps))
  f32 = lambda a: jnp.asarray(np.asarray(a, np.float32))
  if inverse:  # step k: tau_k -> tau_{k+1}
    return (jnp.asarray(tau[:-1], jnp.int32), f32(base[tau[:-1]]), None,
            f32(base[tau[1:]]))
  # Decoding step k (index k - 1): tau_k -> tau_{k-1}; tau_0 lands on 1.
  prev = np.concatenate([[1.0], base[tau[1:-1]]])
  return (jnp.asarray(tau[1:], jnp.int32), f32(base[tau[1:]]), f32(prev),
          None)


def guided_eps_fn(eps_fn: Callable, label, null_label: int, scale, *cond
                  ) -> Callable:
  """Classifier-free guidance around a label-conditioned `eps_fn`.

  Args:
    eps_fn: (x_t [B, ...], t [B], label [B], *cond) -> eps [B, ...].
    label: [B] int target classes c.
    null_label: the null class index.
    scale: guidance scale w >= 0 (float or a traced scalar). A Python 0 or 1
      evaluates only the branch it needs; any other value evaluates both
      branches in ONE batched call of size 2B (one pass over the weights).
    *cond: further per-sample inputs [B, ...] (e.g. z_sem), doubled with x.

  Returns:
    (x_t, t) -> eps(x, t, null) + w (eps(x, t, c) - eps(x, t, null)).
  """
  label = jnp.asarray(label, jnp.int32)
  null = jnp.full_like(label, null_label)
  if isinstance(scale, (int, float)) and float(scale) in (0.0, 1.0):
    fixed = null if float(scale) == 0.0 else label
    return lambda x, t: eps_fn(x, t, fixed, *cond)
  both = jnp.concatenate([label, null])
  cond2 = [jnp.concatenate([c, c]) for c in cond]

  def fn(x, t):
    out = eps_fn(jnp.concatenate([x, x]), jnp.concatenate([t, t]), both,
                 *cond2)
    c_eps, u_eps = jnp.split(out, 2)
    return u_eps + scale * (c_eps - u_eps)
  return fn


def decode(eps_fn: Callable, x_T, num_steps: int, *, num_timesteps=1000,
           clip: bool = True, remat: bool = False, return_traj: bool = False,
           t_max: int | None = None):
  """DDIM sampling from x_T (treated as the state at the last kept step).

  Args:
    t_max: None: upstream's "ddimN" schedule over the whole process; an
      int: x_T is the state at timestep t_max (partial inversion, see the
      module docstring).

  Returns x0 [B, H, W, C] (and, with return_traj, the states and x0_preds
  after each step, [N, B, H, W, C], respaced index N-1 -> 0).
  """
  ts, abar, abar_prev, _ = _schedule(num_steps, num_timesteps, t_max, False)
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
           clip: bool = True, return_traj: bool = False,
           t_max: int | None = None, refine: int = 0):
  """Deterministic DDIM encoding x0 -> x_T (x0 is the state at t = 0).

  Args:
    t_max: None: upstream's schedule (x_T is the state past the last kept
      step); an int: x_T is the state at timestep t_max (partial inversion).
    refine: with `t_max`, fixed-point iterations per step that make each
      inversion step the exact inverse of the matching `decode` step: a plain
      DDIM inversion step evaluates eps at the state it starts from, the
      decoding step at the state it starts from, so a round trip drifts (the
      drift is most of the reconstruction error at 5-10 steps). Iteration j
      decodes the current guess x' one step back to x'' and moves x' by
      sqrt(abar'/abar) (x - x''), the inverse slope of that step for fixed
      eps (equal to the analytic inverse with eps(x') when nothing is
      clipped). Costs `refine` extra eps evaluations per step; the decode is
      unchanged.
  """
  if refine and t_max is None:
    raise ValueError("config diffae.invert_refine > 0 needs a partial "
                     "schedule: set diffae.t_max (e.g. 950 for the whole "
                     "process)")
  ts, abar, _, abar_next = _schedule(num_steps, num_timesteps, t_max, True)
  b = x0.shape[0]
  if refine:
    # The decoding step from tau_{k+1} lands on abar(tau_k), 1 for k = 0.
    _, _, dec_prev, _ = _schedule(num_steps, num_timesteps, t_max, False)
    dec_ts = jnp.concatenate([ts[1:], jnp.asarray(
        schedules.partial_timesteps(num_steps, int(t_max), num_timesteps)[-1:],
        jnp.int32)])

  def step(x, i):
    eps = eps_fn(x, jnp.full((b,), ts[i], jnp.int32))
    x_next, x0_pred = ddim_reverse_step(x, eps, abar[i], abar_next[i], clip)
    for _ in range(refine):
      e = eps_fn(x_next, jnp.full((b,), dec_ts[i], jnp.int32))
      back, _ = ddim_step(x_next, e, abar_next[i], dec_prev[i], clip)
      x_next = x_next + jnp.sqrt(abar_next[i] / dec_prev[i]) * (x - back)
    return x_next, (x_next, x0_pred) if return_traj else None

  x, traj = jax.lax.scan(step, x0, jnp.arange(num_steps))
  return (x, traj) if return_traj else x


def q_sample(x0, t, noise, num_timesteps: int = 1000):
  """Forward noising x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise; t [B]."""
  abar = jnp.asarray(np.cumprod(1.0 - schedules.linear_betas(
      num_timesteps)).astype(np.float32))[t]
  abar = abar.reshape((-1,) + (1,) * (x0.ndim - 1))
  return jnp.sqrt(abar) * x0 + jnp.sqrt(1.0 - abar) * noise
