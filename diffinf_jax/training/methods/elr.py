"""Early-learning regularisation (ELR, Liu et al., NeurIPS 2020).

A per-sample target t_i (temporal ensemble of the model's own predictions,
keyed by training row) is updated every time sample i is seen,

  t_i <- beta * t_i + (1 - beta) * p_i / sum(p_i),   p clipped to [1e-4, 1-1e-4]

and the loss adds lambda * log(1 - <t_i, p_i>) to the cross-entropy, which
keeps the model close to what it predicted during early learning (before it
memorises wrong labels). Defaults are upstream's CIFAR-10 values
beta = 0.7, lambda = 3. The final targets go to W/<out>/elr_targets.npz
(argmax(t_i) != y_i flags a suspected wrong label).
"""

from __future__ import annotations

import functools
import logging
import os

import jax
import jax.numpy as jnp
import numpy as np

from diffinf_jax import losses
from diffinf_jax import fileio
from diffinf_jax.training import loop
from diffinf_jax.training.methods import common

BETA = 0.7
LAMBDA = 3.0


def clipped_probs(logits):
  return jnp.clip(jax.nn.softmax(logits, -1), 1e-4, 1.0 - 1e-4)


def update_targets(targets, rows, probs, valid, beta: float = BETA):
  """Temporal-ensemble update of the rows seen; padding rows change nothing.

  Args:
    targets: [N + 1, K] (the last row is a sink for padding rows).
    rows: [B] training rows; probs: [B, K] clipped predictions; valid: [B].
  """
  sink = targets.shape[0] - 1
  rows = jnp.where(valid, rows, sink)
  p = jax.lax.stop_gradient(probs)
  new = beta * targets[rows] + (1 - beta) * p / jnp.sum(p, -1, keepdims=True)
  return targets.at[rows].set(jnp.where(valid[:, None], new, targets[rows]))


def elr_per_example(logits, labels, target_rows, lam: float = LAMBDA):
  """[B] cross-entropy + lambda * log(1 - <t, p>)."""
  p = clipped_probs(logits)
  reg = jnp.log(1.0 - jnp.sum(jax.lax.stop_gradient(target_rows) * p, -1))
  return losses.softmax_xent(logits, labels) + lam * reg


def elr_step(state, targets, batch, rng, *, flip, crop_pad, beta=BETA,
             lam=LAMBDA):
  """One step; the targets of the batch rows are updated from this forward
  pass (detached) before the regulariser reads them, as upstream does."""
  rng = jax.random.fold_in(rng, state.step)
  aug, drop = jax.random.split(rng)
  x = loop.augment(batch["image"], aug, flip, crop_pad)
  valid = batch["mask"]
  rows = common.safe_rows(batch["row"], valid, targets.shape[0] - 1)

  def objective(params):
    logits, stats = common.forward(state, params, x, drop)
    new_targets = update_targets(targets, batch["row"], clipped_probs(logits),
                                 valid, beta)
    per = elr_per_example(logits, batch["label"], new_targets[rows], lam)
    return losses.masked_mean(per, valid), (stats, new_targets)

  grads, (stats, targets) = jax.grad(objective, has_aux=True)(state.params)
  return state.apply_gradients(grads=grads, batch_stats=stats), targets


def suspected_wrong(targets: np.ndarray, labels: np.ndarray) -> np.ndarray:
  """[N] bool: argmax of the ensembled target [N(+1), K] differs from the
  label [N] (upstream's way of flagging wrong labels)."""
  return np.asarray(targets)[:len(labels)].argmax(-1) != labels


def train(config, dataset, out_dir):
  setup = common.Setup(config, dataset)
  tc = config.train
  state = setup.init_state(0)
  targets = jnp.zeros((setup.num_train + 1, setup.num_classes), jnp.float32)
  step = jax.jit(functools.partial(elr_step, flip=bool(tc.augment_flip),
                                   crop_pad=int(tc.augment_crop_pad)))
  rng = jax.random.key(int(config.seed) + 11)
  for epoch in setup.epochs("elr"):
    for batch in setup.batches(epoch):
      state, targets = step(state, targets, batch, rng)
    logging.info("elr: epoch %d/%d done, %d labels suspected wrong",
                 epoch + 1, setup.num_epochs, int(suspected_wrong(
                     targets, setup.train["label"]).sum()))
  common.save_final(setup, state, out_dir)
  # Targets in training-row order (dataset index: `index` of the train split).
  fileio.save_npz(os.path.join(out_dir, "elr_targets.npz"),
                  targets=np.asarray(targets)[:setup.num_train],
                  index=setup.train["index"])
  return {"epochs": setup.num_epochs, "steps": int(state.step)}
