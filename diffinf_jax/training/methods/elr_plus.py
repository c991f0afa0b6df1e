"""ELR+ (Liu et al., NeurIPS 2020): ELR with two networks, weight averaging
and mixup.

Each network keeps an exponential moving average of its weights; the ELR
targets of network A are the temporal ensemble of network B's AVERAGED
predictions (and vice versa), so a network never regularises towards its own
memorisation. Inputs, labels and targets are mixed with mixup
(lambda ~ Beta(alpha, alpha), max(lambda, 1 - lambda)). The averaged weights
of network A are saved and evaluated. Defaults follow upstream's CIFAR-10
ELR+ configuration: beta = 0.7, lambda_elr = 3, EMA 0.997, alpha = 1, no
lambda ramp. The EMA momentum ramps up as upstream's
a(s) = a_max * exp(-5 (1 - min(s / S, 1))^2), with S = 40000 of ~78000 steps
there, i.e. RAMP_FRACTION of the run here. Deviations: a_max is shortened for
short runs (`effective_decay`); the averaged network predicts targets with
batch statistics (train-mode BatchNorm, as upstream) and is saved with the
online network's running statistics; one shared data stream.
"""

from __future__ import annotations

import functools
import logging

import jax
import jax.numpy as jnp
import optax

from diffinf_jax import losses
from diffinf_jax.training import loop
from diffinf_jax.training.methods import common
from diffinf_jax.training.methods import elr

EMA = 0.997
ALPHA = 1.0
RAMP_FRACTION = 40000 / 78000


def mixup_params(rng, batch_size: int, alpha: float = ALPHA):
  """(lambda, permutation): lambda ~ Beta(alpha, alpha), max(lam, 1 - lam)."""
  lam_rng, perm_rng = jax.random.split(rng)
  lam = jax.random.beta(lam_rng, alpha, alpha)
  return jnp.maximum(lam, 1.0 - lam), jax.random.permutation(perm_rng,
                                                            batch_size)


def mix(a, lam, perm):
  """lam * a + (1 - lam) * a[perm] for inputs [B, ...] or soft labels [B, K]."""
  return lam * a + (1 - lam) * a[perm]


def ema_update(ema, params, decay: float = EMA):
  return optax.incremental_update(params, ema, 1.0 - decay)


def effective_decay(total_steps: int, decay: float = EMA) -> float:
  """Upstream's decay, shortened so the average spans <= 10% of the run.

  0.997 averages over ~330 steps; in a short run (a CPU demo of ~100 steps)
  that average would still be dominated by the initial weights.
  """
  return min(decay, 1.0 - 10.0 / max(total_steps, 20))


def ramped_decay(step, total_steps: int, decay_max: float,
                 ramp_fraction: float = RAMP_FRACTION):
  """Upstream's sigmoid-shaped ramp of the EMA momentum over the run."""
  ramp = max(1.0, ramp_fraction * total_steps)
  s = jnp.minimum(step / ramp, 1.0)
  return decay_max * jnp.exp(-5.0 * (1.0 - s) ** 2)


def elr_plus_loss(logits, y_soft, targets, lam: float = elr.LAMBDA):
  """[B] soft cross-entropy + lambda * log(1 - <q, p>) (q held constant)."""
  p = elr.clipped_probs(logits)
  reg = jnp.log(1.0 - jnp.sum(jax.lax.stop_gradient(targets) * p, -1))
  return losses.soft_xent(logits, y_soft) + lam * reg


def _net_step(state, ema_self, targets, x, y_soft, valid, rng, decay):
  def objective(params):
    logits, stats = common.forward(state, params, x, rng)
    return losses.masked_mean(elr_plus_loss(logits, y_soft, targets),
                              valid), stats
  grads, stats = jax.grad(objective, has_aux=True)(state.params)
  state = state.apply_gradients(grads=grads, batch_stats=stats)
  return state, ema_update(ema_self, state.params, decay)


def elr_plus_step(carry, batch, rng, *, num_classes, flip, crop_pad,
                  decay_max, total_steps):
  (state_a, ema_a, t_a), (state_b, ema_b, t_b) = carry
  rng = jax.random.fold_in(rng, state_a.step)
  aug, mix_rng, da, db = jax.random.split(rng, 4)
  x = loop.augment(batch["image"], aug, flip, crop_pad)
  valid, rows = batch["mask"], batch["row"]
  # Targets of A come from B's averaged weights, and vice versa (batch
  # statistics, as upstream; the statistics they would update are dropped).
  p_from_b, _ = common.forward(state_b, ema_b, x, db)
  p_from_a, _ = common.forward(state_a, ema_a, x, da)
  t_a = elr.update_targets(t_a, rows, elr.clipped_probs(p_from_b), valid)
  t_b = elr.update_targets(t_b, rows, elr.clipped_probs(p_from_a), valid)
  sink = t_a.shape[0] - 1
  safe_rows = jnp.where(valid, rows, sink)
  y_soft = jax.nn.one_hot(batch["label"], num_classes)
  lam, perm = mixup_params(mix_rng, x.shape[0])
  xm, ym = mix(x, lam, perm), mix(y_soft, lam, perm)
  tam = mix(t_a[safe_rows], lam, perm)
  tbm = mix(t_b[safe_rows], lam, perm)
  valid_m = valid & valid[perm]
  decay = ramped_decay(state_a.step + 1, total_steps, decay_max)
  state_a, ema_a = _net_step(state_a, ema_a, tam, xm, ym, valid_m, da, decay)
  state_b, ema_b = _net_step(state_b, ema_b, tbm, xm, ym, valid_m, db, decay)
  return (state_a, ema_a, t_a), (state_b, ema_b, t_b)


def train(config, dataset, out_dir):
  setup = common.Setup(config, dataset)
  tc = config.train
  nets = []
  for k in range(2):
    s = setup.init_state(k)
    nets.append((s, s.params, jnp.zeros((setup.num_train + 1,
                                         setup.num_classes), jnp.float32)))
  carry = tuple(nets)
  total = setup.num_epochs * setup.steps_per_epoch
  step = jax.jit(functools.partial(
      elr_plus_step, num_classes=setup.num_classes,
      flip=bool(tc.augment_flip), crop_pad=int(tc.augment_crop_pad),
      decay_max=effective_decay(total), total_steps=total))
  rng = jax.random.key(int(config.seed) + 13)
  for epoch in setup.epochs("elr+"):
    for batch in setup.batches(epoch):
      carry = step(carry, batch, rng)
    logging.info("elr+: epoch %d/%d done", epoch + 1, setup.num_epochs)
  state_a, ema_a, _ = carry[0]
  common.save_final(setup, state_a, out_dir, params=ema_a)
  return {"epochs": setup.num_epochs, "steps": int(state_a.step)}
