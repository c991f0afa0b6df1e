"""The DiffInf correction objective (paper eq. 9-12) as a pure combination.

  L(x) = w_id * L_id(x, x_i)
       + w_reg * (lambda_struct * L_struct(x, x_i) + lambda_perc * L_perc(x, x_i))
       + w_si * L_si(x, y_i)

with the config's `losses` weights named after the terms: identity = w_id,
structural = w_reg * lambda_struct, perceptual = w_reg * lambda_perc,
influence = w_si (the paper's L_si, the influence predictor's p_high).

Each term is a callable `term(x, batch) -> [B]` (per-sample, so every sample's
latents get their own gradient); a term whose weight is zero is not evaluated.
"""

from __future__ import annotations

from typing import Callable, Mapping

import jax.numpy as jnp

Term = Callable[[jnp.ndarray, dict], jnp.ndarray]
TERM_NAMES = ("identity", "structural", "perceptual", "influence")


def term_weights(losses_config) -> dict[str, float]:
  """Effective weight of each term from the `losses` config section."""
  return {name: float(losses_config[name]) for name in TERM_NAMES}


def make_objective(terms: Mapping[str, Term], weights: Mapping[str, float]
                   ) -> Callable[[jnp.ndarray, dict], tuple[jnp.ndarray, dict]]:
  """Builds `objective(x, batch) -> (total [B], {name: [B]})`.

  Args:
    terms: name -> per-sample loss callable; names from TERM_NAMES.
    weights: name -> weight; terms with weight 0 are skipped.

  Raises:
    KeyError: a weighted term has no callable, or an unknown name is given.
  """
  unknown = set(weights) - set(TERM_NAMES)
  if unknown:
    raise KeyError(f"unknown correction loss terms {sorted(unknown)}; "
                   f"valid: {TERM_NAMES}")
  active = {k: float(w) for k, w in weights.items() if w != 0.0}
  missing = [k for k in active if k not in terms]
  if missing:
    raise KeyError(f"correction loss terms {missing} have non-zero weights "
                   "but no network/function was provided for them")

  def objective(x, batch):
    parts = {k: terms[k](x, batch) for k in active}
    total = sum(active[k] * parts[k] for k in active)
    if not active:
      total = jnp.zeros(x.shape[0], x.dtype)
    return total, parts

  return objective
