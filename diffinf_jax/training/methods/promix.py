"""ProMix (Wang et al., 2022): maximising the utility of clean samples.

Two networks; after a warm-up, every epoch each network's PEER selects the
clean set it trains on with
  * class-wise progressive small-loss selection: for every class c, the k
    lowest-loss samples labelled c, k = ceil(rho(t) * min_c n_c), where rho
    grows linearly from RHO_START to RHO_END over training (balanced, so rare
    classes are not crowded out), plus
  * matched high-confidence selection: samples whose prediction equals their
    label with confidence >= TAU.
Selected samples are trained with cross-entropy on their labels; the others
train an auxiliary pseudo-label head (a Dense on g(x)) towards the main
head's DEBIASED prediction argmax(logits - log prior), prior = the mean
predicted class distribution (label-guided debiasing by logit adjustment).
Network A's main classifier is saved and evaluated (the pseudo-label head is
not part of it).
"""

from __future__ import annotations

import functools
import logging

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from diffinf_jax import sharding
from diffinf_jax.training import loop
from diffinf_jax.training.methods import common

WARMUP_FRACTION = 0.2
RHO_START, RHO_END = 0.5, 1.0
TAU = 0.95


def rho(progress: float) -> float:
  return RHO_START + (RHO_END - RHO_START) * float(progress)


def classwise_selection(losses: np.ndarray, labels: np.ndarray,
                        num_classes: int, fraction: float) -> np.ndarray:
  """[N] bool: per class the k smallest losses, k = ceil(fraction * min n_c)."""
  counts = [int((labels == c).sum()) for c in range(num_classes)]
  present = [n for n in counts if n]
  k = int(np.ceil(fraction * min(present))) if present else 0
  keep = np.zeros(len(labels), bool)
  for c in range(num_classes):
    idx = np.flatnonzero(labels == c)
    keep[idx[np.argsort(losses[idx], kind="stable")[:k]]] = True
  return keep


def matched_high_confidence(probs: np.ndarray, labels: np.ndarray,
                            tau: float = TAU) -> np.ndarray:
  return (probs.argmax(1) == labels) & (probs.max(1) >= tau)


class PseudoHead(nn.Module):
  num_classes: int

  @nn.compact
  def __call__(self, features):
    return nn.Dense(self.num_classes, name="pseudo_head")(features)


def _select(state, setup) -> np.ndarray:
  """The clean mask [N] chosen by one network (evaluation mode)."""
  probs = loop.predict_dataset(
      state.apply_fn, {"params": state.params,
                       "batch_stats": state.batch_stats},
      setup.train["image"], setup.batch_size, setup.mesh)
  labels = setup.train["label"]
  loss = -np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None))
  return loss, probs


def promix_step(state, head_params, head_opt, clean, prior, batch, rng, *,
                head, head_tx, flip, crop_pad, warm):
  rng = jax.random.fold_in(rng, state.step)
  aug, drop = jax.random.split(rng)
  x = loop.augment(batch["image"], aug, flip, crop_pad)
  valid = batch["mask"]
  sink = clean.shape[0] - 1
  is_clean = clean[jnp.where(valid, batch["row"], sink)] | warm

  def objective(params, hp):
    (logits, aux), mutated = state.apply_fn(
        {"params": params, "batch_stats": state.batch_stats}, x, train=True,
        mutable=["batch_stats"], rngs={"dropout": drop})
    ce = common.xent(logits, batch["label"])
    debiased = jax.lax.stop_gradient(logits - jnp.log(prior))
    pseudo = jnp.argmax(debiased, -1)
    aux_ce = common.xent(head.apply(hp, aux["features"]), pseudo)
    per = jnp.where(is_clean, ce, aux_ce)
    loss = jnp.sum(jnp.where(valid, per, 0.0)) / jnp.maximum(jnp.sum(valid), 1)
    return loss, mutated["batch_stats"]

  (g_main, g_head), stats = jax.grad(objective, argnums=(0, 1),
                                     has_aux=True)(state.params, head_params)
  state = state.apply_gradients(grads=g_main, batch_stats=stats)
  updates, head_opt = head_tx.update(g_head, head_opt, head_params)
  head_params = jax.tree_util.tree_map(jnp.add, head_params, updates)
  return state, head_params, head_opt


def train(config, workdir, dataset, *, out_subdir):
  setup = common.Setup(config, dataset)
  tc, k = config.train, setup.num_classes
  head = PseudoHead(k)
  head_tx = setup.tx
  nets = []
  for i in range(2):
    s = setup.init_state(i)
    hp = head.init(jax.random.key(100 + i),
                   jnp.zeros((1, int(config.model.head_hidden))))
    nets.append([s, hp, head_tx.init(hp)])
  step = jax.jit(functools.partial(
      promix_step, head=head, head_tx=head_tx, flip=bool(tc.augment_flip),
      crop_pad=int(tc.augment_crop_pad)), static_argnames=("warm",))
  rng = jax.random.key(int(config.seed) + 17)
  warmup = max(1, int(round(WARMUP_FRACTION * setup.num_epochs)))
  n = setup.num_train
  for epoch in range(setup.num_epochs):
    warm = epoch < warmup
    masks, priors = [np.ones(n + 1, bool)] * 2, [np.full(k, 1.0 / k)] * 2
    if not warm:
      masks, priors = [], []
      for peer in (1, 0):  # each network trains on its peer's selection
        loss, probs = _select(nets[peer][0], setup)
        sel = classwise_selection(loss, setup.train["label"], k,
                                  rho(epoch / setup.num_epochs))
        sel |= matched_high_confidence(probs, setup.train["label"])
        masks.append(np.concatenate([sel, [False]]))
        priors.append(np.clip(probs.mean(0), 1e-6, None))
    for batch in tqdm(setup.batches(epoch), total=setup.steps_per_epoch,
                      leave=False, disable=None, desc=f"promix {epoch}"):
      for i in range(2):
        s, hp, ho = nets[i]
        nets[i] = list(step(s, hp, ho, sharding.replicate(
            jnp.asarray(masks[i]), setup.mesh), jnp.asarray(priors[i],
                                                            jnp.float32),
                            batch, rng, warm=warm))
    logging.info("promix: epoch %d/%d done%s", epoch + 1, setup.num_epochs,
                 " (warm-up)" if warm else
                 f", clean {int(masks[0].sum())}/{n}")
  common.save_final(setup, nets[0][0], workdir, out_subdir)
  return {"epochs": setup.num_epochs, "steps": int(nets[0][0].step)}
