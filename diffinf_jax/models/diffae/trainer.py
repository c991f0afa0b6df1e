"""Training a (small) DiffAE: encoder + UNet jointly, epsilon prediction.

Loss (upstream's simple loss): E_{x0, t ~ U{0..T-1}, eps} ||eps -
eps_theta(sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, t, Enc(x0)[, c])||^2, with an
exponential moving average of the weights (the EMA weights are what is
saved for inference). The loop is pure of files: a `checkpoints` object
(`checkpointing.StateCheckpoints`) saved every `save_every_steps` lets an
interrupted run resume, and a `preview` callback receives the EMA weights
every `sample_every_steps` (`pipeline/train_diffae.py` writes both to the
run directory).

Class-conditional generators (config num_classes K > 0, paper eq. 6-8) are
trained on labels c in 0..K-1; each label is replaced by the null class K
with probability `label_dropout`, so one network learns both eps(., c) and
eps(., null) for classifier-free guidance (Ho & Salimans 2022). By default
the labels are the training split's ASSIGNED (noisy) labels, the only ones
a user of DiffInf has. `z_dropout` replaces z_sem by zeros with that
probability (the decoder then also learns to denoise without the semantic
code). Training may start from unconditional weights (e.g. the converted
official FFHQ-128 autoencoder): their class embedding starts at zero, so
the model starts as exactly the unconditional one.

A conditional model may also be trained with a semantic-code ADVERSARY
(`z_adversary` > 0, after Fader networks, Lample et al. 2017): a small MLP
learns to predict the label from z_sem while the encoder is pushed (weight
`z_adversary`) to make that prediction uniform. Why: z_sem of a face already
shows its class, so a decoder given both learns to ignore the label, and
decoding under another label changes nothing; a class-blind z_sem leaves
the class to the label (measure it with scripts/class_control.py).
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from diffinf_jax.diffusion import ddim
from diffinf_jax.models import diffae as diffae_models
from diffinf_jax.models.diffae import runtime as diffae_runtime


def drop_labels(rng, labels, rate: float, null_label: int):
  """Each label [B] replaced by `null_label` with probability `rate`."""
  drop = jax.random.bernoulli(rng, rate, labels.shape)
  return jnp.where(drop, null_label, labels)


def x0_weights(t, cap: float, num_timesteps: int = 1000):
  """Per-sample loss weights clip(1 / SNR_t, 1, cap) [B] for timesteps t.

  eps error * sqrt(1 / SNR) is the x0 error: cap 1 is the plain eps loss,
  a large cap approaches the x0 loss, which weights the high-noise steps
  where only global content (z_sem, the class) can be predicted.
  """
  from diffinf_jax.diffusion import schedules
  abar = np.cumprod(1.0 - schedules.linear_betas(num_timesteps))
  inv_snr = jnp.asarray(((1.0 - abar) / abar).astype(np.float32))[t]
  return jnp.clip(inv_snr, 1.0, cap)


def denoising_loss(model, params, x0, t, noise, rng, train: bool,
                   label=None, z_keep=None, x0_weight_cap: float = 1.0,
                   z=None):
  """Mean (weighted) squared eps error [scalar] for images x0 [B, H, W, C].

  Args:
    label: [B] ints (conditional models; null class allowed) or None.
    z_keep: [B] bool or None; False rows get z_sem = 0 (z dropout).
    x0_weight_cap: weights clip(1 / SNR_t, 1, cap) (1: the plain loss).
    z: the encoder's z_sem of x0 [B, D] when already computed.
  """
  x_t = ddim.q_sample(x0, t, noise)
  if z is None:
    z = model.apply(params, x0, method=diffae_models.DiffAE.encode)
  if z_keep is not None:
    z = jnp.where(z_keep[:, None], z, 0.0)
  eps = model.apply(params, x_t, t, z, label, train=train,
                    rngs={"dropout": rng})
  err = jnp.mean((eps - noise) ** 2, axis=(1, 2, 3))
  if x0_weight_cap != 1.0:
    err = err * x0_weights(t, x0_weight_cap)
  return jnp.mean(err)


def init_adversary(rng, z_dim: int, num_classes: int, hidden: int = 64
                   ) -> dict:
  """Parameters of the z_sem -> class MLP (z_dim -> hidden -> K)."""
  k1, k2 = jax.random.split(rng)
  return {"w1": jax.random.normal(k1, (z_dim, hidden)) / np.sqrt(z_dim),
          "b1": jnp.zeros((hidden,)),
          "w2": jax.random.normal(k2, (hidden, num_classes)) / np.sqrt(hidden),
          "b2": jnp.zeros((num_classes,))}


def adversary_logits(head: dict, z):
  """Class logits [B, K] of the adversary for semantic codes z [B, D]."""
  return jax.nn.relu(z @ head["w1"] + head["b1"]) @ head["w2"] + head["b2"]


def adversary_losses(head: dict, z, label):
  """(head loss, encoder loss) [scalars] for codes z [B, D], labels [B].

  The head minimises cross-entropy to the labels (z held fixed); the
  encoder minimises cross-entropy to the UNIFORM distribution (head held
  fixed): bounded below by log K, which is reached when z_sem shows no
  class to this head.
  """
  head_ce = optax.softmax_cross_entropy_with_integer_labels(
      adversary_logits(head, jax.lax.stop_gradient(z)), label)
  log_p = jax.nn.log_softmax(
      adversary_logits(jax.lax.stop_gradient(head), z), -1)
  return jnp.mean(head_ce), -jnp.mean(log_p)


def denoising_and_adversary_loss(model, params, head, x0, t, noise, rng,
                                 label, clean_label, z_keep,
                                 x0_weight_cap: float, z_adversary: float):
  """denoising loss + head loss + z_adversary * encoder loss [scalar]."""
  z = model.apply(params, x0, method=diffae_models.DiffAE.encode)
  head_loss, enc_loss = adversary_losses(head, z, clean_label)
  loss = denoising_loss(model, params, x0, t, noise, rng, True, label, z_keep,
                        x0_weight_cap, z=z)
  return loss + head_loss + z_adversary * enc_loss, loss


def train_step(state, x0, label, rng, *, model, tx, ema_decay,
               label_dropout: float = 0.0, z_dropout: float = 0.0,
               x0_weight_cap: float = 1.0, z_adversary: float = 0.0,
               head_tx=None):
  """One step; state (params, ema, opt_state, step[, head, head_opt_state])
  (the last two iff z_adversary > 0)."""
  params, ema, opt_state, step = state[:4]
  rng = jax.random.fold_in(rng, step)
  t_rng, n_rng, d_rng, l_rng, z_rng = jax.random.split(rng, 5)
  t = jax.random.randint(t_rng, (x0.shape[0],), 0, 1000)
  noise = jax.random.normal(n_rng, x0.shape)
  clean_label = label
  if label is not None and label_dropout > 0:
    label = drop_labels(l_rng, label, label_dropout,
                        model.config.num_classes)
  z_keep = None
  if z_dropout > 0:
    z_keep = ~jax.random.bernoulli(z_rng, z_dropout, (x0.shape[0],))
  if z_adversary > 0:
    head, head_opt = state[4:]
    (_, loss), (grads, head_grads) = jax.value_and_grad(
        lambda p, h: denoising_and_adversary_loss(
            model, p, h, x0, t, noise, d_rng, label, clean_label, z_keep,
            x0_weight_cap, z_adversary), argnums=(0, 1), has_aux=True)(
                params, head)
    head_updates, head_opt = head_tx.update(head_grads, head_opt, head)
    extra = (optax.apply_updates(head, head_updates), head_opt)
  else:
    loss, grads = jax.value_and_grad(
        lambda p: denoising_loss(model, p, x0, t, noise, d_rng, True, label,
                                 z_keep, x0_weight_cap))(params)
    extra = ()
  updates, opt_state = tx.update(grads, opt_state, params)
  params = optax.apply_updates(params, updates)
  ema = jax.tree_util.tree_map(
      lambda e, p: ema_decay * e + (1 - ema_decay) * p, ema, params)
  return (params, ema, opt_state, step + 1) + extra, loss


@functools.lru_cache(maxsize=8)
def codec(cfg: diffae_models.DiffAEConfig, t_encode: int, t_decode: int):
  """Jitted (encode(params, x0), decode(params, z, x_T)), compiled once per
  config and step counts (params are arguments, so EMA snapshots reuse it).
  Conditional models run under the null class."""

  def enc(params, x0):
    return diffae_runtime.DiffAEModel(cfg, params).encode(x0, t_encode)

  def dec(params, z, x_T):
    return diffae_runtime.DiffAEModel(cfg, params).decode(z, x_T, t_decode)

  return jax.jit(enc), jax.jit(dec)


def reconstruction_mse(model, params, x0, t_encode: int = 10,
                       t_decode: int = 10) -> float:
  """Mean squared error of decode(encode(x0)) (deterministic DDIM)."""
  enc, dec = codec(model.config, t_encode, t_decode)
  z, x_T = enc(params, x0)
  return float(jnp.mean((dec(params, z, x_T) - x0) ** 2))


def heldout_loss(model, params, x0, seed: int = 0) -> float:
  """Denoising loss at fixed timesteps and noise (comparable across runs;
  conditional models under the null class)."""
  rng = jax.random.key(seed)
  loss_fn = _eval_loss(model.config)
  label = None
  if model.config.num_classes:
    label = jnp.full((x0.shape[0],), model.config.num_classes, jnp.int32)
  losses = []
  for t in (50, 250, 500, 750):
    noise = jax.random.normal(jax.random.fold_in(rng, t), x0.shape)
    losses.append(loss_fn(params, x0, jnp.full((x0.shape[0],), t), noise,
                          label))
  return float(jnp.mean(jnp.stack(losses)))


@functools.lru_cache(maxsize=8)
def _eval_loss(cfg: diffae_models.DiffAEConfig):
  model = diffae_models.DiffAE(cfg)
  return jax.jit(lambda p, x0, t, noise, label: denoising_loss(
      model, p, x0, t, noise, jax.random.key(0), False, label))


def _optimizer(params, lr: float, label_lr_mult: float
               ) -> optax.GradientTransformation:
  """Adam; the class embedding's updates scaled by `label_lr_mult`."""
  if not (np.isfinite(label_lr_mult) and label_lr_mult > 0):
    raise ValueError(f"config diffae.train.label_lr_mult={label_lr_mult}: "
                     "must be a finite number > 0")
  tx = optax.adam(lr)
  if label_lr_mult == 1.0 or not diffae_models.is_conditional(params):
    return tx
  is_label = jax.tree_util.tree_map_with_path(
      lambda path, _: any(getattr(k, "key", None) == "label_emb"
                          for k in path), params)
  return optax.chain(tx, optax.masked(optax.scale(label_lr_mult), is_label))


def _check_labels(labels, n: int, k: int) -> np.ndarray:
  labels = np.asarray(labels)
  if labels.shape != (n,):
    raise ValueError(f"DiffAE training labels must be [N={n}]; got shape "
                     f"{labels.shape}")
  bad = labels[(labels < 0) | (labels >= k)]
  if bad.size:
    raise ValueError(f"DiffAE training label {bad[0]} is outside 0..{k - 1} "
                     f"(diffae.num_classes={k}): set diffae.num_classes to "
                     "the task's class count")
  return labels.astype(np.int32)


def _check_rate(name: str, rate: float) -> float:
  rate = float(rate)
  if not 0.0 <= rate < 1.0:
    raise ValueError(f"config diffae.train.{name}={rate}: must lie in [0, 1)")
  return rate


def train(images: np.ndarray, cfg: diffae_models.DiffAEConfig, *,
          num_steps: int, batch_size: int, lr: float, ema_decay: float,
          seed: int = 0, checkpoints=None,
          save_every_steps: int = 0,
          preview: Callable[[str, dict, np.ndarray], None] | None = None,
          sample_every_steps: int = 0,
          eval_images: np.ndarray | None = None,
          labels: np.ndarray | None = None, label_dropout: float = 0.0,
          z_dropout: float = 0.0, init_variables=None,
          label_lr_mult: float = 1.0, x0_weight_cap: float = 1.0,
          z_adversary: float = 0.0, max_seconds: float = 0.0
          ) -> tuple[dict, dict]:
  """Trains on float images [N, H, W, C] in [-1, 1].

  Args:
    checkpoints: None, or where the state goes every `save_every_steps`
      and is resumed from (`checkpointing.StateCheckpoints`: `latest(state)`
      -> the newest saved state or None, `save(step, state)`).
    preview: None, or called as preview(tag, ema_variables, eval_images[:16])
      every `sample_every_steps` (tag: the step, zero-padded to 6 digits) and
      at the end (tag `final`).
    labels: [N] ints in 0..K-1, required iff cfg.num_classes = K > 0.
    label_dropout: probability of replacing a label by the null class.
    z_dropout: probability of replacing z_sem by zeros.
    init_variables: start from these variables (e.g. converted weights,
      extended with `models.diffae.extend_variables`) instead of a random
      initialisation.
    label_lr_mult: learning-rate multiplier of the class embedding. Why:
      it starts at zero and the class shows in the eps loss mainly at high
      noise, where eps errors are small, so at the UNet's rate it learns
      slowly (and noisy labels weaken its gradient further).
    x0_weight_cap: loss weights clip(1 / SNR_t, 1, cap) (`x0_weights`).
    z_adversary: weight of the semantic-code adversary's encoder loss
      (`adversary_losses`; conditional models only; 0: none).
    max_seconds: > 0: start no step after this many seconds of training
      (the steps done are in the metrics: rerun with that num_steps to
      reproduce); 0: run all num_steps.

  Returns:
    (ema_variables, metrics) with held-out denoising loss and reconstruction
    MSE at initialisation and at the end.
  """
  if images.shape[1:] != (cfg.image_size, cfg.image_size, cfg.in_channels):
    raise ValueError(f"training images have shape {images.shape[1:]}; the "
                     f"DiffAE config expects {cfg.image_size}px x "
                     f"{cfg.in_channels}")
  k = int(cfg.num_classes)
  if k and labels is None:
    raise ValueError(f"DiffAE config num_classes={k} needs training labels "
                     "(diffae.train.labels=assigned or pool)")
  if not k and labels is not None:
    raise ValueError("training labels given for an unconditional DiffAE: set "
                     "diffae.num_classes=K")
  if k:
    labels = _check_labels(labels, len(images), k)
  label_dropout = _check_rate("label_dropout", label_dropout)
  z_dropout = _check_rate("z_dropout", z_dropout)
  z_adversary = float(z_adversary)
  if not (np.isfinite(z_adversary) and z_adversary >= 0):
    raise ValueError(f"config diffae.train.z_adversary={z_adversary}: must be "
                     "a finite number >= 0 (0: no adversary)")
  if z_adversary and not k:
    raise ValueError("config diffae.train.z_adversary > 0 needs a "
                     "class-conditional DiffAE: set diffae.num_classes=K")
  t0 = time.time()
  model = diffae_models.DiffAE(cfg)
  rng = jax.random.key(seed)
  if init_variables is None:
    params = diffae_models.init_variables(model, rng)
  else:
    params = jax.tree_util.tree_map(jnp.asarray, init_variables)
    want = jax.eval_shape(lambda: diffae_models.init_variables(model, rng))
    got = jax.tree_util.tree_map(lambda a: a.shape, params)
    if jax.tree_util.tree_map(lambda a: a.shape, want) != got:
      raise ValueError("diffae.train.init_weights_dir: the weights do not fit "
                       "the DiffAE config (different architecture)")
  tx = _optimizer(params, lr, float(label_lr_mult))
  state = (params, params, tx.init(params), jnp.int32(0))
  head_tx = None
  if z_adversary:
    head_tx = optax.adam(lr)
    head = init_adversary(jax.random.fold_in(rng, 1), cfg.enc_out_channels, k)
    state = state + (head, head_tx.init(head))
  if checkpoints is not None and save_every_steps:
    restored = checkpoints.latest(state)
    if restored is not None:
      state = restored
      logging.info("train-diffae: resuming at step %d", int(state[3]))
  evals = eval_images if eval_images is not None else images[:16]
  metrics = {"heldout_loss_init": heldout_loss(model, params, evals),
             "recon_mse_init": reconstruction_mse(model, params, evals)}
  if not (np.isfinite(x0_weight_cap) and x0_weight_cap >= 1.0):
    raise ValueError(f"config diffae.train.x0_weight_cap={x0_weight_cap}: "
                     "must be a finite number >= 1 (1: the plain eps loss)")
  step_fn = jax.jit(functools.partial(
      train_step, model=model, tx=tx, ema_decay=ema_decay,
      label_dropout=label_dropout, z_dropout=z_dropout,
      x0_weight_cap=float(x0_weight_cap), z_adversary=z_adversary,
      head_tx=head_tx))
  losses = []
  t_train = time.time()
  for step in range(int(state[3]), num_steps):
    if max_seconds and time.time() - t_train > max_seconds:
      logging.info("train-diffae: stopping at step %d (max_seconds %.0f)",
                   step, max_seconds)
      num_steps = step
      break
    # Batches depend on (seed, step) only, so a resumed run sees the same.
    idx = np.random.default_rng([seed, step]).integers(0, len(images),
                                                        batch_size)
    state, loss = step_fn(state, jnp.asarray(images[idx]),
                          None if labels is None else jnp.asarray(labels[idx]),
                          rng)
    losses.append(float(loss))
    if not np.isfinite(losses[-1]):
      raise FloatingPointError(f"train-diffae: loss became {losses[-1]} at "
                               f"step {step}; lower diffae.train.lr")
    if (step + 1) % 100 == 0:
      logging.info("train-diffae step %d/%d: loss %.4f", step + 1, num_steps,
                   np.mean(losses[-100:]))
    if (checkpoints is not None and save_every_steps
        and (step + 1) % save_every_steps == 0):
      checkpoints.save(step + 1, state)
    if preview and sample_every_steps and (step + 1) % sample_every_steps == 0:
      preview(f"{step + 1:06d}", state[1], evals[:16])
  ema = state[1]
  metrics.update({"heldout_loss_final": heldout_loss(model, ema, evals),
                  "recon_mse_final": reconstruction_mse(model, ema, evals),
                  "train_loss_last100": float(np.mean(losses[-100:]))
                  if losses else None,
                  "num_steps": num_steps,
                  "seconds": round(time.time() - t0, 1)})
  if preview:
    preview("final", ema, evals[:16])
  return jax.device_get(ema), metrics
