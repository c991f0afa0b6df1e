"""ProMix (Xiao et al., IJCAI 2023): maximising the utility of clean samples.

Two networks, each with a primary head (the `config.model` classifier) and an
auxiliary pseudo-label head (a Dense on the penultimate feature g(x)); each
network selects its OWN clean set (no exchange, as upstream's code):

  * pre-training (PRETRAIN_FRACTION of the run, >= 1 epoch): cross-entropy on
    all samples for both heads;
  * class-wise small-loss selection (CSS), once per epoch: per noisy class j
    the k_j = max(1, min(ceil(rho N / K), n_j)) lowest-loss samples (loss in
    evaluation mode), rho ramping linearly from RHO_START to 1 - noise.rate
    over the warm-up;
  * matched high-confidence selection (MHCS), per batch: also flag samples
    whose current softmax on their given label exceeds TAU;
  * debiasing: EMA class priors of the flagged (pi) and unflagged (pi_u) part
    of each batch; every training logit is adjusted z + ALPHA_OUT log(pi)
    (logit adjustment), pseudo-labels are softmax(z - ALPHA_PL log(pi_u)),
    sharpened with temperature T;
  * losses per net: CE on flagged samples for both heads + w * mixup CE on the
    flagged subset (pairs inside the subset) for both heads + beta * soft CE
    of the pseudo head on the unflagged samples towards the debiased
    pseudo-labels.

Network 1's primary classifier is saved and evaluated (plain `config.model`
variables; the pseudo head is not part of the checkpoint). Omitted: strong
(RandAugment) views and their consistency term, FMix, label guessing by
agreement; see DEVIATIONS.md.
"""

from __future__ import annotations

import functools
import logging
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from diffinf_jax import losses
from diffinf_jax import sharding
from diffinf_jax.models import classifier
from diffinf_jax.training import loop
from diffinf_jax.training import state as state_lib
from diffinf_jax.training.methods import common

# Upstream CIFAR-10: pretrain 10, warmup_ep 50 of 600 epochs; bias_m 0.9999
# averages over 1e4 of ~117,600 steps.
PRETRAIN_FRACTION = 10 / 600
WARMUP_FRACTION = 50 / 600
PRIOR_SPAN_FRACTION = 1e4 / 117600
RHO_START = 0.2
TAU = 0.99
ALPHA_OUT = 0.8
ALPHA_PL = 0.8
TEMPERATURE = 0.5
BETA_U = 0.1
MIXUP_ALPHA = 4.0


def rho(epoch: float, rho_end: float, warmup_epochs: float,
        rho_start: float = RHO_START) -> float:
  """Selection ratio: linear ramp rho_start -> rho_end over the warm-up."""
  t = min(float(epoch) / max(warmup_epochs, 1e-8), 1.0)
  return rho_start + (rho_end - rho_start) * t


def class_budgets(labels: np.ndarray, num_classes: int,
                  ratio: float) -> np.ndarray:
  """[K] k_j = max(1, min(ceil(ratio * N / K), n_j)) (0 for empty classes)."""
  counts = np.bincount(labels, minlength=num_classes)
  k = math.ceil(ratio * len(labels) / num_classes - 1e-9)
  return np.where(counts > 0, np.maximum(1, np.minimum(k, counts)), 0)


def classwise_selection(losses: np.ndarray, labels: np.ndarray,
                        num_classes: int, ratio: float) -> np.ndarray:
  """[N] bool: per noisy class j its k_j lowest-loss samples (CSS)."""
  budgets = class_budgets(labels, num_classes, ratio)
  keep = np.zeros(len(labels), bool)
  for c in range(num_classes):
    idx = np.flatnonzero(labels == c)
    keep[idx[np.argsort(losses[idx], kind="stable")[:budgets[c]]]] = True
  return keep


def matched_high_confidence(probs, labels, tau: float = TAU):
  """[B] bool: softmax probs [B, K] on the given label exceed tau (MHCS)."""
  return jnp.take_along_axis(probs, labels[:, None], axis=1)[:, 0] > tau


def subset_pairs(keep, rng):
  """[B] partner of each row for mixup inside the subset `keep` [B] bool.

  Subset rows come first in a random order and each is paired with the next
  one cyclically; rows outside the subset are paired with themselves.
  """
  b = keep.shape[0]
  keys = jax.random.uniform(rng, (b,)) + jnp.where(keep, 0.0, 2.0)
  order = jnp.argsort(keys)
  n = jnp.maximum(jnp.sum(keep), 1)
  pos = jnp.arange(b)
  nxt = jnp.where(pos < n, order[(pos + 1) % n], order)
  return jnp.zeros(b, jnp.int32).at[order].set(nxt.astype(jnp.int32))


def update_prior(prior, probs, part, momentum):
  """EMA of the mean softmax over the rows in `part`; unchanged if empty."""
  n = jnp.sum(part)
  mean = jnp.sum(probs * part[:, None], 0) / jnp.maximum(n, 1)
  new = momentum * prior + (1 - momentum) * mean
  return jnp.where(n > 0, new, prior)


def _log(prior):
  return jnp.log(jnp.clip(prior, 1e-6, 1.0))


def debiased_pseudo_labels(logits, prior_u, alpha_pl=ALPHA_PL,
                           temperature=TEMPERATURE):
  """[B, K] softmax(z - alpha log pi_u) sharpened by 1 / T (no gradient)."""
  q = jax.nn.softmax(jax.lax.stop_gradient(logits) - alpha_pl *
                     _log(prior_u), -1)
  q = q ** (1.0 / temperature)
  return q / jnp.sum(q, -1, keepdims=True)


class PseudoHead(nn.Module):
  """The auxiliary pseudo-label head on g(x) [B, head_hidden]."""
  num_classes: int

  @nn.compact
  def __call__(self, features):
    return nn.Dense(self.num_classes, name="pseudo_head")(features)


def _net_update(net, css, x, batch, rng, sched, *, head, num_classes):
  """One optimiser step of one network (both heads); returns the new net."""
  state, hp, ho, prior, prior_u = net
  y, valid = batch["label"], batch["mask"]
  rows = common.safe_rows(batch["row"], valid, css.shape[0] - 1)
  drop, mix_rng, lam_rng = jax.random.split(rng, 3)
  lam = jax.random.beta(lam_rng, MIXUP_ALPHA, MIXUP_ALPHA)
  lam = jnp.maximum(lam, 1.0 - lam)
  onehot = jax.nn.one_hot(y, num_classes)

  def objective(params, head_params):
    logits, stats, feats = _apply(state, params, x, drop)
    probs = jax.nn.softmax(jax.lax.stop_gradient(logits), -1)
    flagged = valid & (css[rows] | matched_high_confidence(probs, y, TAU)
                       | sched["all_clean"])
    unflagged = valid & ~flagged
    new_prior = update_prior(prior, probs, flagged, sched["momentum"])
    new_prior_u = update_prior(prior_u, probs, unflagged, sched["momentum"])
    adj = sched["alpha_out"] * _log(new_prior)
    adj_u = sched["alpha_out"] * _log(new_prior_u)
    h = head.apply(head_params, feats)
    sup = losses.masked_mean(losses.softmax_xent(logits + adj, y) +
                             losses.softmax_xent(h + adj, y), flagged)
    q = debiased_pseudo_labels(logits, new_prior_u)
    unsup = losses.masked_mean(losses.soft_xent(h + adj_u, q), unflagged)
    pair = subset_pairs(flagged, mix_rng)
    xm = lam * x + (1 - lam) * x[pair]
    ym = lam * onehot + (1 - lam) * onehot[pair]
    logits_m, _, feats_m = _apply(state, params, xm, drop)
    mixed = losses.masked_mean(
        losses.soft_xent(logits_m + adj, ym) +
        losses.soft_xent(head.apply(head_params, feats_m) + adj, ym), flagged)
    loss = sup + sched["w"] * mixed + sched["beta"] * unsup
    return loss, (stats, new_prior, new_prior_u, jnp.sum(flagged))

  (g_main, g_head), (stats, prior, prior_u, n_flagged) = jax.grad(
      objective, argnums=(0, 1), has_aux=True)(state.params, hp)
  state = state.apply_gradients(grads=g_main, batch_stats=stats)
  updates, ho = state.tx.update(g_head, ho, hp)
  hp = jax.tree_util.tree_map(jnp.add, hp, updates)
  return (state, hp, ho, prior, prior_u), n_flagged


def _apply(state, params, x, drop):
  (logits, aux), mutated = state.apply_fn(
      {"params": params, "batch_stats": state.batch_stats}, x, train=True,
      mutable=["batch_stats"], rngs={"dropout": drop})
  return logits, mutated["batch_stats"], aux["features"]


def promix_step(nets, masks, batch, rng, sched, *, head, num_classes, flip,
                crop_pad):
  """Both networks, each on its own clean mask; returns (nets, flagged)."""
  rng = jax.random.fold_in(rng, nets[0][0].step)
  aug, r0, r1 = jax.random.split(rng, 3)
  x = loop.augment(batch["image"], aug, flip, crop_pad)
  upd = functools.partial(_net_update, x=x, batch=batch, sched=sched,
                          head=head, num_classes=num_classes)
  net0, f0 = upd(nets[0], masks[0], rng=r0)
  net1, _ = upd(nets[1], masks[1], rng=r1)
  return (net0, net1), f0


def schedule(epoch: int, num_epochs: int, steps_per_epoch: int) -> dict:
  """Per-epoch scalars: pre-training flag, w, beta, prior momentum."""
  pretrain = max(1, round(PRETRAIN_FRACTION * num_epochs))
  warmup = WARMUP_FRACTION * num_epochs
  span = max(1.0, PRIOR_SPAN_FRACTION * num_epochs * steps_per_epoch)
  pre = epoch < pretrain
  return {"all_clean": np.bool_(pre),
          "w": np.float32(0 if pre else min(epoch / warmup, 1.0)),
          # Upstream ramps beta over 2 warm-ups; kept on afterwards (the
          # paper's loss; upstream's code switches it off then).
          "beta": np.float32(0 if pre else BETA_U * min(
              epoch / (2 * warmup), 1.0)),
          "alpha_out": np.float32(0 if pre else ALPHA_OUT),
          "momentum": np.float32(min(0.9999, 1.0 - 1.0 / span))}


def _eval_losses(state, setup) -> np.ndarray:
  """[N] per-sample CE of one network (evaluation mode, no augmentation)."""
  probs = classifier.predict_dataset(
      state.apply_fn, {"params": state.params,
                       "batch_stats": state.batch_stats},
      setup.train["image"], setup.batch_size, setup.mesh)
  labels = setup.train["label"]
  return -np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None))


def train(config, dataset, out_dir):
  setup = common.Setup(config, dataset)
  tc, k, n = config.train, setup.num_classes, setup.num_train
  head = PseudoHead(k)
  uniform = jnp.full((k,), 1.0 / k, jnp.float32)
  nets = []
  for i in range(2):
    s = setup.init_state(i)
    hp = head.init(jax.random.fold_in(jax.random.key(int(config.seed)),
                                       100 + i),
                   jnp.zeros((1, int(config.model.head_hidden))))
    nets.append(sharding.replicate((s, hp, setup.tx.init(hp), uniform,
                                    uniform), setup.mesh))
  nets = tuple(nets)
  step = jax.jit(functools.partial(
      promix_step, head=head, num_classes=k, flip=bool(tc.augment_flip),
      crop_pad=int(tc.augment_crop_pad)))
  rng = jax.random.key(int(config.seed) + 17)
  rho_end = 1.0 - state_lib.assumed_noise_rate(config)
  for epoch in setup.epochs("promix"):
    sched = schedule(epoch, setup.num_epochs, setup.steps_per_epoch)
    masks = [np.ones(n + 1, bool)] * 2
    if not sched["all_clean"]:
      ratio = rho(epoch, rho_end, WARMUP_FRACTION * setup.num_epochs)
      masks = [np.concatenate([classwise_selection(
          _eval_losses(net[0], setup), setup.train["label"], k, ratio),
                               [False]]) for net in nets]
    masks = sharding.replicate(tuple(jnp.asarray(m) for m in masks),
                               setup.mesh)
    flagged = 0
    for batch in setup.batches(epoch):
      nets, f = step(nets, masks, batch, rng, sched)
      flagged += int(f)
    logging.info("promix: epoch %d/%d done (%s), net 1 trained on %d "
                 "flagged samples", epoch + 1, setup.num_epochs,
                 "pre-training" if sched["all_clean"] else "selection",
                 flagged)
  common.save_final(setup, nets[0][0], out_dir)
  return {"epochs": setup.num_epochs, "steps": int(nets[0][0].step)}
