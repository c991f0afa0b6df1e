"""Random variables of a guidance network at its configured input size."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def random_variables(model, rng: jax.Array) -> dict:
  """{'params', 'batch_stats'} of `model` (whose config has `input_size`
  (H, W)) for one [1, H, W, 3] image; under eval_shape: shapes only."""
  h, w = model.config.input_size
  # jit: op-by-op init is many times slower on CPU.
  return jax.jit(model.init)(rng, jnp.zeros((1, h, w, 3), jnp.float32))
