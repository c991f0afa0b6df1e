"""Co-teaching (Han et al., NeurIPS 2018): two networks teach each other.

Each network ranks the mini-batch by its own loss and hands its small-loss
R(T) fraction to the OTHER network, which is updated on those samples only.
R(T) as in `small_loss` (tau = `noise.rate`, the realised rate under the
flip convention; ramp over the same fraction of training as upstream's 10 of
200 epochs). Both networks share one forward/backward pass per step (the
selection uses the stop-gradient losses of that pass). Network A is saved
and evaluated.
"""

from __future__ import annotations

import functools
import logging

import jax
import jax.numpy as jnp

from diffinf_jax import losses
from diffinf_jax.training import loop
from diffinf_jax.training import state as state_lib
from diffinf_jax.training.methods import common
from diffinf_jax.training.methods import small_loss


def exchange_masks(loss_a, loss_b, valid, fraction):
  """(rows that train A, rows that train B): each picked by the other net.

  Args:
    loss_a, loss_b: [B] per-example losses of networks A and B.
    valid: [B] bool (False = padding).
    fraction: R(T), scalar in [0, 1].
  """
  pick_a = small_loss.small_loss_mask(loss_a, valid, fraction)
  pick_b = small_loss.small_loss_mask(loss_b, valid, fraction)
  return pick_b, pick_a


def cot_step(state_a, state_b, batch, rng, *, tau, flip, crop_pad):
  """One step of both networks; returns (state_a, state_b, metrics)."""
  rng = jax.random.fold_in(rng, state_a.step)
  aug, da, db = jax.random.split(rng, 3)
  x = loop.augment(batch["image"], aug, flip, crop_pad)
  y, valid = batch["label"], batch["mask"]
  frac = small_loss.keep_fraction(batch["progress"][0], tau)

  def objective(params_a, params_b):
    logits_a, stats_a = common.forward(state_a, params_a, x, da)
    logits_b, stats_b = common.forward(state_b, params_b, x, db)
    ce_a, ce_b = losses.softmax_xent(logits_a, y), losses.softmax_xent(logits_b, y)
    train_a, train_b = exchange_masks(jax.lax.stop_gradient(ce_a),
                                      jax.lax.stop_gradient(ce_b), valid,
                                      frac)
    # The sum separates: A's gradient only sees A's term, B's only B's.
    loss = losses.masked_mean(ce_a, train_a) + losses.masked_mean(ce_b,
                                                                  train_b)
    return loss, (stats_a, stats_b, train_a)

  (g_a, g_b), (stats_a, stats_b, train_a) = jax.grad(
      objective, argnums=(0, 1), has_aux=True)(state_a.params, state_b.params)
  state_a = state_a.apply_gradients(grads=g_a, batch_stats=stats_a)
  state_b = state_b.apply_gradients(grads=g_b, batch_stats=stats_b)
  return state_a, state_b, {"kept": jnp.sum(train_a)}


def train(config, dataset, out_dir):
  setup = common.Setup(config, dataset)
  tc = config.train
  state_a, state_b = setup.init_state(0), setup.init_state(1)
  step = jax.jit(functools.partial(
      cot_step, tau=state_lib.assumed_noise_rate(config),
      flip=bool(tc.augment_flip),
      crop_pad=int(tc.augment_crop_pad)))
  rng = jax.random.key(int(config.seed) + 7)
  for epoch in setup.epochs("co-teaching"):
    kept = 0
    for batch in setup.batches(epoch):
      state_a, state_b, m = step(state_a, state_b, batch, rng)
      kept += int(m["kept"])
    logging.info("co-teaching: epoch %d/%d done, %d samples kept",
                 epoch + 1, setup.num_epochs, kept)
  common.save_final(setup, state_a, out_dir)
  return {"epochs": setup.num_epochs, "steps": int(state_a.step)}
