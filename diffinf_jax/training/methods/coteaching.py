"""Co-teaching (Han et al., NeurIPS 2018): two networks teach each other.

Each network ranks the mini-batch by its own loss and hands its small-loss
R(T) fraction to the OTHER network, which is updated on those samples only.
R(T) as in `small_loss` (noise rate tau = `noise.rate`, ramp over the same
fraction of training as upstream's 10 of 200 epochs). Network A is saved and
evaluated.
"""

from __future__ import annotations

import functools
import logging

import jax
import jax.numpy as jnp
from tqdm import tqdm

from diffinf_jax.training import loop
from diffinf_jax.training.methods import common
from diffinf_jax.training.methods import small_loss


def exchange_masks(loss_a, loss_b, valid, fraction):
  """(rows that train A, rows that train B): each picked by the other net."""
  pick_a = small_loss.small_loss_mask(loss_a, valid, fraction)
  pick_b = small_loss.small_loss_mask(loss_b, valid, fraction)
  return pick_b, pick_a


def _masked_mean(per, keep):
  return jnp.sum(jnp.where(keep, per, 0.0)) / jnp.maximum(jnp.sum(keep), 1)


def cot_step(state_a, state_b, batch, rng, *, tau, flip, crop_pad):
  rng = jax.random.fold_in(rng, state_a.step)
  aug, da, db = jax.random.split(rng, 3)
  x = loop.augment(batch["image"], aug, flip, crop_pad)
  y, valid = batch["label"], batch["mask"]
  logits_a, _ = common.forward(state_a, state_a.params, x, da)
  logits_b, _ = common.forward(state_b, state_b.params, x, db)
  frac = small_loss.keep_fraction(batch["progress"][0], tau)
  train_a, train_b = exchange_masks(
      jax.lax.stop_gradient(common.xent(logits_a, y)),
      jax.lax.stop_gradient(common.xent(logits_b, y)), valid, frac)

  def update(state, keep, drop_rng):
    def objective(params):
      logits, stats = common.forward(state, params, x, drop_rng)
      return _masked_mean(common.xent(logits, y), keep), stats
    grads, stats = jax.grad(objective, has_aux=True)(state.params)
    return state.apply_gradients(grads=grads, batch_stats=stats)

  return update(state_a, train_a, da), update(state_b, train_b, db)


def train(config, workdir, dataset, *, out_subdir):
  setup = common.Setup(config, dataset)
  tc = config.train
  state_a, state_b = setup.init_state(0), setup.init_state(1)
  step = jax.jit(functools.partial(
      cot_step, tau=float(config.noise.rate), flip=bool(tc.augment_flip),
      crop_pad=int(tc.augment_crop_pad)))
  rng = jax.random.key(int(config.seed) + 7)
  for epoch in range(setup.num_epochs):
    for batch in tqdm(setup.batches(epoch), total=setup.steps_per_epoch,
                      leave=False, disable=None, desc=f"co-teaching {epoch}"):
      state_a, state_b = step(state_a, state_b, batch, rng)
    logging.info("co-teaching: epoch %d/%d done", epoch + 1,
                 setup.num_epochs)
  common.save_final(setup, state_a, workdir, out_subdir)
  return {"epochs": setup.num_epochs, "steps": int(state_a.step)}
