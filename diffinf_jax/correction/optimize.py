"""Latent optimisation of many samples at once, the generator frozen (eq. 6-8).

Each sample i has its own latents (z_sem [D], and optionally x_T [H, W, C]);
the objective is per-sample, so the gradient of the batch sum gives every
sample exactly its own gradient. The whole N-step optimisation is one jitted
`lax.scan`.

A sample whose loss or gradient turns non-finite is stopped: its latents are
frozen and its best iterate so far is kept, so one bad sample cannot poison
the batch. "Best" is the lowest total loss seen over the evaluated iterates
(including the initial one and the final one).
"""

from __future__ import annotations

from typing import Callable

import flax.struct
import jax
import jax.numpy as jnp
import optax

Latents = dict  # {'z_sem': [B, D], 'x_T': [B, H, W, C]}


@flax.struct.dataclass
class CorrectionState:
  latents: Latents
  opt_state: optax.OptState
  best: Latents
  best_loss: jnp.ndarray     # [B]
  alive: jnp.ndarray         # [B] bool


def _per_sample_finite(tree) -> jnp.ndarray:
  leaves = jax.tree_util.tree_leaves(tree)
  flags = [jnp.all(jnp.isfinite(l.reshape(l.shape[0], -1)), axis=1)
           for l in leaves]
  return jnp.all(jnp.stack(flags), axis=0)


def _select(mask, a, b):
  """Per-sample where over a latents tree: mask [B] picks a, else b."""
  def sel(x, y):
    m = mask.reshape((-1,) + (1,) * (x.ndim - 1))
    return jnp.where(m, x, y)
  return jax.tree_util.tree_map(sel, a, b)


def _split(latents: Latents, optimize_x_T: bool) -> tuple[Latents, Latents]:
  """(optimised, frozen) parts of the latents."""
  if optimize_x_T:
    return dict(latents), {}
  return ({"z_sem": latents["z_sem"]},
          {k: v for k, v in latents.items() if k != "z_sem"})


def make_optimizer(name: str, lr: float) -> optax.GradientTransformation:
  table = {"adam": optax.adam, "sgd": optax.sgd, "adamw": optax.adamw}
  if name not in table:
    raise ValueError(f"config correction.optimizer={name!r}: use one of "
                     f"{sorted(table)}")
  return table[name](lr)


def init_state(latents: Latents, optimizer, optimize_x_T: bool
               ) -> CorrectionState:
  trainable, _ = _split(latents, optimize_x_T)
  batch = latents["z_sem"].shape[0]
  return CorrectionState(
      latents=latents, opt_state=optimizer.init(trainable), best=latents,
      best_loss=jnp.full((batch,), jnp.inf, jnp.float32),
      alive=jnp.ones((batch,), bool))


def make_run_fn(decode: Callable[..., jnp.ndarray],
                objective: Callable, optimizer: optax.GradientTransformation,
                num_steps: int, optimize_x_T: bool):
  """Builds `run(state, batch) -> (state, trace)`, jit-compiled once.

  Args:
    decode: (z_sem [B, D], x_T [B, H, W, C], label [B]) -> image
      [B, H, W, C] in [-1, 1]; differentiable (e.g. a rematerialised DDIM
      decode; `label` is batch["label"], the assigned classes).
    objective: (x, batch) -> (total [B], {term: [B]}).
    num_steps: optimiser steps N; N + 1 iterates are evaluated.
    optimize_x_T: also optimise x_T (else only z_sem).

  Returns:
    run: trace is a dict of [N + 1, B] arrays: `total` and every term, for the
    iterate evaluated at each step (the last row is the final iterate).
  """

  def loss_fn(trainable, frozen, batch):
    lat = {**frozen, **trainable}
    total, parts = objective(decode(lat["z_sem"], lat["x_T"],
                                    batch.get("label")), batch)
    return jnp.sum(jnp.where(jnp.isfinite(total), total, 0.0)), (total, parts)

  grad_fn = jax.grad(loss_fn, has_aux=True)

  def evaluate(state, batch):
    trainable, frozen = _split(state.latents, optimize_x_T)
    grads, (total, parts) = grad_fn(trainable, frozen, batch)
    finite = jnp.isfinite(total) & _per_sample_finite(grads)
    alive = state.alive & finite
    improved = alive & (total < state.best_loss)
    best = _select(improved, state.latents, state.best)
    best_loss = jnp.where(improved, total, state.best_loss)
    state = state.replace(best=best, best_loss=best_loss, alive=alive)
    return state, grads, {"total": total, **parts}

  def step(state, batch):
    state, grads, trace = evaluate(state, batch)
    trainable, frozen = _split(state.latents, optimize_x_T)
    grads = _select(state.alive, grads,
                    jax.tree_util.tree_map(jnp.zeros_like, grads))
    updates, opt_state = optimizer.update(grads, state.opt_state, trainable)
    new_trainable = optax.apply_updates(trainable, updates)
    # Stopped samples keep their latents (Adam momentum would move them).
    new_trainable = _select(state.alive, new_trainable, trainable)
    return state.replace(latents={**frozen, **new_trainable},
                         opt_state=opt_state), trace

  @jax.jit
  def run(state, batch):
    state, trace = jax.lax.scan(lambda s, _: step(s, batch), state, None,
                                length=num_steps)
    state, _, last = evaluate(state, batch)
    trace = jax.tree_util.tree_map(
        lambda t, l: jnp.concatenate([t, l[None]], axis=0), trace, last)
    return state, trace

  return run
