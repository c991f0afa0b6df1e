"""Latent optimisation of many samples at once, the generator frozen (eq. 6-8).

Each sample i has its own latents (z_sem [D], and optionally x_T [H, W, C]);
the objective is per-sample, so the gradient of the batch sum gives every
sample exactly its own gradient. The whole N-step optimisation is one jitted
`lax.scan`.

A sample whose loss or gradient turns non-finite is stopped: its latents are
frozen and its best iterate so far is kept, so one bad sample cannot poison
the batch. "Best" is the lowest total loss seen over the evaluated iterates
(including the initial one and the final one). The decoded images of the best
and of the initial iterate are kept too: the objective decodes them anyway,
so the caller needs no further decode (the final iterate is evaluated
without a gradient, which nothing would use).
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
  best_image: jnp.ndarray    # [B, H, W, C] the decode of `best`
  start_image: jnp.ndarray   # [B, H, W, C] the decode of the initial latents
  num_evaluated: jnp.ndarray  # [] int: iterates evaluated so far


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
  """The state before any step; decoded images have x_T's shape (a DiffAE
  decodes x_T [B, H, W, C] to an image of the same shape)."""
  trainable, _ = _split(latents, optimize_x_T)
  batch = latents["z_sem"].shape[0]
  blank = jnp.zeros_like(latents["x_T"])
  return CorrectionState(
      latents=latents, opt_state=optimizer.init(trainable), best=latents,
      best_loss=jnp.full((batch,), jnp.inf, jnp.float32),
      alive=jnp.ones((batch,), bool), best_image=blank, start_image=blank,
      num_evaluated=jnp.zeros((), jnp.int32))


def _record(state: CorrectionState, total, image, finite) -> CorrectionState:
  """Updates alive / best / the kept images with one evaluated iterate."""
  alive = state.alive & finite
  improved = alive & (total < state.best_loss)
  first = state.num_evaluated == 0
  return state.replace(
      best=_select(improved, state.latents, state.best),
      best_loss=jnp.where(improved, total, state.best_loss), alive=alive,
      best_image=_select(improved, image, state.best_image),
      start_image=jnp.where(first, image, state.start_image),
      num_evaluated=state.num_evaluated + 1)


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
    iterate evaluated at each step (the last row is the final iterate); the
    state holds the best iterate's latents and image and the initial
    iterate's image.
  """

  def loss_fn(trainable, frozen, batch):
    lat = {**frozen, **trainable}
    image = decode(lat["z_sem"], lat["x_T"], batch.get("label"))
    total, parts = objective(image, batch)
    return (jnp.sum(jnp.where(jnp.isfinite(total), total, 0.0)),
            (total, parts, image))

  grad_fn = jax.grad(loss_fn, has_aux=True)

  def evaluate(state, batch):
    trainable, frozen = _split(state.latents, optimize_x_T)
    grads, (total, parts, image) = grad_fn(trainable, frozen, batch)
    finite = jnp.isfinite(total) & _per_sample_finite(grads)
    state = _record(state, total, image, finite)
    return state, grads, {"total": total, **parts}

  def evaluate_last(state, batch):
    trainable, frozen = _split(state.latents, optimize_x_T)
    _, (total, parts, image) = loss_fn(trainable, frozen, batch)
    state = _record(state, total, image, jnp.isfinite(total))
    return state, {"total": total, **parts}

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
    state, last = evaluate_last(state, batch)
    trace = jax.tree_util.tree_map(
        lambda t, l: jnp.concatenate([t, l[None]], axis=0), trace, last)
    return state, trace

  return run
