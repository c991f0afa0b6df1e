"""Per-example losses (keyword-only, reduction explicit)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def softmax_xent(*, logits: jnp.ndarray, labels: jnp.ndarray,
                 reduction: bool = False, mask: jnp.ndarray | None = None):
  """Cross-entropy of integer labels.

  Args:
    logits: [B, K]; labels: [B] int.
    reduction: False -> [B] per-example losses; True -> masked mean.
    mask: [B] bool, False rows are excluded from the mean.
  """
  logp = jax.nn.log_softmax(logits.astype(jnp.float32))
  per = -jnp.take_along_axis(logp, labels[:, None].astype(jnp.int32),
                             axis=1)[:, 0]
  if not reduction:
    return per
  return masked_mean(per, mask)


def masked_mean(values: jnp.ndarray, mask: jnp.ndarray | None) -> jnp.ndarray:
  if mask is None:
    return jnp.mean(values)
  m = mask.astype(values.dtype)
  return jnp.sum(values * m) / jnp.maximum(jnp.sum(m), 1.0)
