"""Small-loss training: the single-network half of Co-teaching (Han et al.
2018).

In every mini-batch only the R(T) fraction of valid samples with the smallest
loss is trained on, with

  R(T) = 1 - min(T / T_k * tau, tau),

tau the noise rate (Co-teaching uses the known rate: `noise.rate`, the
realised rate under diffinf-jax's flip convention) and T_k
the ramp length: 10 of 200 epochs upstream, here the same FRACTION of the
configured epochs (RAMP_FRACTION). Selection uses a rank mask, so shapes stay
static.
"""

import jax.numpy as jnp

from diffinf_jax import losses

RAMP_FRACTION = 10 / 200


def keep_fraction(progress, tau: float, ramp: float = RAMP_FRACTION):
  """R(T) for training progress T / num_epochs in [0, 1)."""
  return 1.0 - jnp.minimum(progress / ramp * tau, tau)


def small_loss_mask(per_example, valid, fraction):
  """[B] bool: the round(fraction * n_valid) smallest of per_example [B]
  among the valid [B] rows (ranks from a double argsort: static shapes)."""
  n_valid = jnp.sum(valid)
  k = jnp.round(fraction * n_valid).astype(jnp.int32)
  masked = jnp.where(valid, per_example, jnp.inf)
  ranks = jnp.argsort(jnp.argsort(masked, stable=True), stable=True)
  return valid & (ranks < k)


def make_loss(tau: float):
  def per_example_loss(logits, batch):
    per = losses.softmax_xent(logits, batch["label"])
    valid = batch.get("mask", jnp.ones(per.shape, bool))
    frac = keep_fraction(batch["progress"][0], tau)
    keep = small_loss_mask(per, valid, frac)
    # Rescale so the loop's mean over valid rows is the mean over kept rows.
    scale = jnp.sum(valid) / jnp.maximum(jnp.sum(keep), 1)
    return jnp.where(keep, per, 0.0) * scale
  return per_example_loss


def train(config, dataset, out_dir):
  from diffinf_jax.training import loop
  from diffinf_jax.training import state as state_lib
  return loop.train(config, dataset, out_dir,
                    loss_fn=make_loss(state_lib.assumed_noise_rate(config)))
