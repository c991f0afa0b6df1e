"""Training a (small) DiffAE: encoder + UNet jointly, epsilon prediction.

Loss (upstream's simple loss): E_{x0, t ~ U{0..T-1}, eps} ||eps -
eps_theta(sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, t, Enc(x0)[, c])||^2, with an
exponential moving average of the weights (the EMA weights are what is
saved for inference). Orbax checkpoints every `save_every_steps` let an
interrupted run resume; reconstruction and sample grids are written as
PNGs.

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
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp

from diffinf_jax.diffusion import ddim
from diffinf_jax.models import diffae as diffae_models


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
def _codec(cfg: diffae_models.DiffAEConfig, t_encode: int, t_decode: int):
  """Jitted (encode(params, x0), decode(params, z, x_T)), compiled once per
  config and step counts (params are arguments, so EMA snapshots reuse it).
  Conditional models run under the null class."""
  from diffinf_jax import diffae_api

  def enc(params, x0):
    return diffae_api.DiffAEModel(cfg, params).encode(x0, t_encode)

  def dec(params, z, x_T):
    return diffae_api.DiffAEModel(cfg, params).decode(z, x_T, t_decode)

  return jax.jit(enc), jax.jit(dec)


def reconstruction_mse(model, params, x0, t_encode: int = 10,
                       t_decode: int = 10) -> float:
  """Mean squared error of decode(encode(x0)) (deterministic DDIM)."""
  enc, dec = _codec(model.config, t_encode, t_decode)
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


def write_grid(model, params, x0, path: str) -> None:
  """Writes two PNGs next to `path` ([B, H, W, C] images x0 in [-1, 1]):

  `path`: originals (top) and their encode -> decode reconstructions
  (bottom); `path` with recon -> sample: originals and a decode of a FIXED
  random x_T with each original's z_sem (upstream's training previews), i.e.
  what the semantic code alone carries.
  """
  from diffinf_jax import plots
  enc, dec = _codec(model.config, 10, 10)
  scale = max(1, 64 // x0.shape[1])
  z, x_T = enc(params, x0)
  plots.before_after_grid(np.asarray(x0), np.asarray(dec(params, z, x_T)),
                          path, scale=scale)
  noise = jax.random.normal(jax.random.key(0), x0.shape)
  head, tail = os.path.split(path)
  plots.before_after_grid(np.asarray(x0), np.asarray(dec(params, z, noise)),
                          os.path.join(head, tail.replace("recon", "sample")),
                          scale=scale)


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
          seed: int = 0, workdir: str | None = None,
          save_every_steps: int = 0, sample_every_steps: int = 0,
          eval_images: np.ndarray | None = None,
          labels: np.ndarray | None = None, label_dropout: float = 0.0,
          z_dropout: float = 0.0, init_variables=None,
          label_lr_mult: float = 1.0, x0_weight_cap: float = 1.0,
          z_adversary: float = 0.0, max_seconds: float = 0.0
          ) -> tuple[dict, dict]:
  """Trains on float images [N, H, W, C] in [-1, 1].

  Args:
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
    max_seconds: > 0: start no step after this many seconds of training (the steps done are in the metrics: rerun with that
      num_steps to reproduce); 0: run all num_steps.

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
  ckpt_dir = os.path.join(workdir, "checkpoints") if workdir else None
  mngr = None
  if ckpt_dir and save_every_steps:
    mngr = ocp.CheckpointManager(os.path.abspath(ckpt_dir), options=(
        ocp.CheckpointManagerOptions(max_to_keep=2, create=True,
                                     enable_async_checkpointing=False)))
    if mngr.latest_step() is not None:
      restored = mngr.restore(mngr.latest_step(), args=ocp.args.StandardRestore(
          jax.tree_util.tree_map(np.asarray, state)))
      state = jax.tree_util.tree_map(jnp.asarray, restored)
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
    if mngr and (step + 1) % save_every_steps == 0:
      mngr.save(step + 1, args=ocp.args.StandardSave(
          jax.tree_util.tree_map(np.asarray, state)))
    if workdir and sample_every_steps and (step + 1) % sample_every_steps == 0:
      write_grid(model, state[1], evals[:16],
                 os.path.join(workdir, f"recon_{step + 1:06d}.png"))
  if mngr:
    mngr.wait_until_finished()
  ema = state[1]
  metrics.update({"heldout_loss_final": heldout_loss(model, ema, evals),
                  "recon_mse_final": reconstruction_mse(model, ema, evals),
                  "train_loss_last100": float(np.mean(losses[-100:]))
                  if losses else None,
                  "num_steps": num_steps,
                  "seconds": round(time.time() - t0, 1)})
  if workdir:
    write_grid(model, ema, evals[:16], os.path.join(workdir,
                                                    "recon_final.png"))
  return jax.device_get(ema), metrics


def _dataset(config):
  """The run's dataset, rebuilt from the config (labels are deterministic)."""
  from diffinf_jax import data
  src = data.load_source(config)
  return data.assemble(config, src, data.make_labels(config, src))


def training_data(config) -> tuple[np.ndarray, np.ndarray | None,
                                   np.ndarray, dict]:
  """(images, labels or None, eval images, provenance) per config.diffae.

  Labels: `train.labels=assigned` (default): the training split's assigned
  (noisy) labels; `pool`: images and labels from `train.pool_file` (an .npz
  with image [N, H, W, 3] uint8 or float in [-1, 1] and label [N]), e.g. a
  separately labelled set. Unconditional models (num_classes 0) use the
  training split's images without labels.
  """
  from diffinf_jax import data
  a = config.diffae
  k = int(a.get("num_classes", 0))
  source = a.train.get("labels", "assigned")
  if source not in ("assigned", "pool"):
    raise ValueError(f"config diffae.train.labels={source!r}: use 'assigned' "
                     "(the training split's labels) or 'pool' "
                     "(diffae.train.pool_file)")
  ds = _dataset(config)
  val_images = ds.images("val")[:16]
  if k and source == "pool":
    path = a.train.get("pool_file", "")
    if not path or not os.path.isfile(path):
      raise FileNotFoundError(
          f"config diffae.train.pool_file={path!r}: no such file; with "
          "diffae.train.labels=pool give an .npz with image and label")
    with np.load(path) as f:
      images, labels = data.to_float_image(f["image"]), f["label"]
    return images, labels, val_images, {"labels": "pool", "pool_file": path,
                                        "num_images": int(len(labels))}
  arrays = ds.arrays("train")
  labels = arrays["label"] if k else None
  return arrays["image"], labels, val_images, {
      "labels": "assigned (noisy) training-split labels" if k else "none",
      "split": "train", "num_images": int(len(arrays["image"]))}


def model_config(config) -> tuple[diffae_models.DiffAEConfig, dict | None,
                                  str]:
  """(architecture, initial variables or None, what they came from).

  From `diffae.train.init_weights_dir` when set (its config.json decides the
  architecture; unconditional weights get a zero class embedding when
  diffae.num_classes > 0), else `diffae.preset` with diffae.num_classes.
  """
  import dataclasses
  from diffinf_jax import weights
  a = config.diffae
  k = int(a.get("num_classes", 0))
  init_dir = a.train.get("init_weights_dir", "")
  if not init_dir:
    cfg = dataclasses.replace(diffae_models.get_preset(a.preset),
                              num_classes=k)
    return cfg, None, f"preset {a.preset}, random init"
  variables, cfg_dict, _ = weights.load_converted(init_dir,
                                                  what="DiffAE init weights")
  cfg = diffae_models.DiffAEConfig.from_dict(cfg_dict)
  if cfg.num_classes == 0 and k:
    variables, cfg = diffae_models.extend_variables(variables, cfg, k)
  elif cfg.num_classes != k:
    raise ValueError(
        f"diffae.train.init_weights_dir={init_dir} holds a DiffAE with "
        f"{cfg.num_classes} classes but diffae.num_classes={k}: fine-tune "
        "from unconditional weights or from weights of the same task")
  return cfg, variables, f"fine-tuned from {init_dir}"


def run(config, workdir: str, out_dir: str, num_steps: int | None = None,
        max_seconds: float = 0.0) -> dict:
  """Trains the DiffAE of config.diffae on the run's training images; writes
  out_dir in the converted-weights layout (float16). `max_seconds` > 0 caps
  the training time (`train`)."""
  from diffinf_jax import weights
  a = config.diffae
  cfg, init, origin = model_config(config)
  images, labels, val_images, provenance = training_data(config)
  t = a.train
  ema, metrics = train(
      images, cfg, num_steps=int(num_steps or t.num_steps),
      batch_size=int(t.batch_size), lr=float(t.lr),
      ema_decay=float(t.ema_decay), seed=int(config.seed),
      workdir=os.path.join(workdir, "diffae_train"),
      save_every_steps=int(t.save_every_steps),
      sample_every_steps=int(t.sample_every_steps),
      eval_images=val_images if len(val_images) else None,
      labels=labels, label_dropout=float(t.get("label_dropout", 0.0)),
      z_dropout=float(t.get("z_dropout", 0.0)), init_variables=init,
      label_lr_mult=float(t.get("label_lr_mult", 1.0)),
      x0_weight_cap=float(t.get("x0_weight_cap", 1.0)),
      z_adversary=float(t.get("z_adversary", 0.0)), max_seconds=max_seconds)
  manifest = {"kind": "diffae", "source_file": "", "source_sha256": "",
              "source_prefix": "", "num_source_keys": 0, "dtype": "float16",
              "trained_on": {"data": config.data.name,
                             "task": config.data.task,
                             "image_size": int(config.data.image_size),
                             "noise_rate": float(config.noise.rate),
                             "noise_seed": int(config.noise.seed),
                             **provenance},
              "train": {"init": origin, "num_classes": int(cfg.num_classes),
                        "label_dropout": float(t.get("label_dropout", 0.0)),
                        "z_dropout": float(t.get("z_dropout", 0.0)),
                        "label_lr_mult": float(t.get("label_lr_mult", 1.0)),
                        "x0_weight_cap": float(t.get("x0_weight_cap", 1.0)),
                        "z_adversary": float(t.get("z_adversary", 0.0)),
                        "num_steps": int(metrics["num_steps"]),
                        "batch_size": int(t.batch_size), "lr": float(t.lr),
                        "ema_decay": float(t.ema_decay),
                        "seed": int(config.seed)},
              "metrics": metrics}
  weights.write_converted(out_dir, ema, cfg.to_dict(), manifest,
                          dtype="float16")
  return metrics
