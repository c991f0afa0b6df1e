"""Classification losses shared by every trainer: per-example, reduction explicit.

The one home of cross-entropy and of the masked mean (training loop,
baselines, influence predictor and the influence engine's default loss).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def softmax_xent(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """[...] cross-entropy (nats) of logits [..., K] to integer labels [...]
  (e.g. [B, K] and [B], or per pixel [B, h, w, K] and [B, h, w])."""
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  return -jnp.take_along_axis(logp, labels[..., None].astype(jnp.int32),
                              axis=-1)[..., 0]


def soft_xent(logits: jax.Array, targets: jax.Array) -> jax.Array:
  """[B] cross-entropy of logits [B, K] to soft targets [B, K]."""
  return -jnp.sum(targets * jax.nn.log_softmax(logits, -1), -1)


def masked_mean(values: jax.Array, keep: jax.Array | None) -> jax.Array:
  """Mean of values [B] over the rows where keep [B] (bool or weights) is set.

  Rows with keep = 0 (padding) contribute nothing; an all-zero mask gives 0.
  """
  if keep is None:
    return jnp.mean(values)
  keep = keep.astype(values.dtype)
  return jnp.sum(values * keep) / jnp.maximum(jnp.sum(keep), 1.0)
