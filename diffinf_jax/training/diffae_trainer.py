"""Training a (small) DiffAE: encoder + UNet jointly, epsilon prediction.

Loss (upstream's simple loss): E_{x0, t ~ U{0..T-1}, eps} ||eps -
eps_theta(sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, t, Enc(x0))||^2, with an
exponential moving average of the weights (the EMA weights are what is
saved for inference). Orbax checkpoints every `save_every_steps` let an
interrupted run resume; reconstruction and sample grids are written as
PNGs.
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


def denoising_loss(model, params, x0, t, noise, rng, train: bool):
  """Mean squared eps error [scalar] for images x0 [B, H, W, C]."""
  x_t = ddim.q_sample(x0, t, noise)
  z = model.apply(params, x0, method=diffae_models.DiffAE.encode)
  eps = model.apply(params, x_t, t, z, train=train, rngs={"dropout": rng})
  return jnp.mean((eps - noise) ** 2)


def train_step(state, x0, rng, *, model, tx, ema_decay):
  params, ema, opt_state, step = state
  rng = jax.random.fold_in(rng, step)
  t_rng, n_rng, d_rng = jax.random.split(rng, 3)
  t = jax.random.randint(t_rng, (x0.shape[0],), 0, 1000)
  noise = jax.random.normal(n_rng, x0.shape)
  loss, grads = jax.value_and_grad(
      lambda p: denoising_loss(model, p, x0, t, noise, d_rng, True))(params)
  updates, opt_state = tx.update(grads, opt_state, params)
  params = optax.apply_updates(params, updates)
  ema = jax.tree_util.tree_map(
      lambda e, p: ema_decay * e + (1 - ema_decay) * p, ema, params)
  return (params, ema, opt_state, step + 1), loss


@functools.lru_cache(maxsize=8)
def _codec(cfg: diffae_models.DiffAEConfig, t_encode: int, t_decode: int):
  """Jitted (encode(params, x0), decode(params, z, x_T)), compiled once per
  config and step counts (params are arguments, so EMA snapshots reuse it)."""
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
  """Denoising loss at fixed timesteps and noise (comparable across runs)."""
  rng = jax.random.key(seed)
  loss_fn = _eval_loss(model.config)
  losses = []
  for t in (50, 250, 500, 750):
    noise = jax.random.normal(jax.random.fold_in(rng, t), x0.shape)
    losses.append(loss_fn(params, x0, jnp.full((x0.shape[0],), t), noise))
  return float(jnp.mean(jnp.stack(losses)))


@functools.lru_cache(maxsize=8)
def _eval_loss(cfg: diffae_models.DiffAEConfig):
  model = diffae_models.DiffAE(cfg)
  return jax.jit(lambda p, x0, t, noise: denoising_loss(
      model, p, x0, t, noise, jax.random.key(0), False))


def write_grid(model, params, x0, path: str) -> None:
  """Writes two PNGs next to `path` ([B, H, W, C] images x0 in [-1, 1]):

  `path`: originals (top) and their encode -> decode reconstructions
  (bottom); `path` with recon -> sample: originals and a decode of a FIXED
  random x_T with each original's z_sem (upstream's training previews), i.e.
  what the semantic code alone carries.
  """
  from diffinf_jax.correction import outputs
  enc, dec = _codec(model.config, 10, 10)
  scale = max(1, 64 // x0.shape[1])
  z, x_T = enc(params, x0)
  outputs.before_after_grid(np.asarray(x0), np.asarray(dec(params, z, x_T)),
                            path, scale=scale)
  noise = jax.random.normal(jax.random.key(0), x0.shape)
  head, tail = os.path.split(path)
  outputs.before_after_grid(np.asarray(x0), np.asarray(dec(params, z, noise)),
                            os.path.join(head, tail.replace("recon",
                                                            "sample")),
                            scale=scale)


def train(images: np.ndarray, cfg: diffae_models.DiffAEConfig, *,
          num_steps: int, batch_size: int, lr: float, ema_decay: float,
          seed: int = 0, workdir: str | None = None,
          save_every_steps: int = 0, sample_every_steps: int = 0,
          eval_images: np.ndarray | None = None) -> tuple[dict, dict]:
  """Trains on float images [N, H, W, C] in [-1, 1].

  Returns:
    (ema_variables, metrics) with held-out denoising loss and reconstruction
    MSE at initialisation and at the end.
  """
  if images.shape[1:] != (cfg.image_size, cfg.image_size, cfg.in_channels):
    raise ValueError(f"training images have shape {images.shape[1:]}; the "
                     f"DiffAE config expects {cfg.image_size}px x "
                     f"{cfg.in_channels}")
  t0 = time.time()
  model = diffae_models.DiffAE(cfg)
  rng = jax.random.key(seed)
  params = diffae_models.init_variables(model, rng)
  tx = optax.adam(lr)
  state = (params, params, tx.init(params), jnp.int32(0))
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
  step_fn = jax.jit(functools.partial(train_step, model=model, tx=tx,
                                      ema_decay=ema_decay))
  data_rng = np.random.default_rng(seed)
  losses = []
  for step in range(int(state[3]), num_steps):
    idx = np.random.default_rng([seed, step]).integers(0, len(images),
                                                        batch_size)
    state, loss = step_fn(state, jnp.asarray(images[idx]), rng)
    losses.append(float(loss))
    if (step + 1) % 100 == 0:
      logging.info("train-diffae step %d/%d: loss %.4f", step + 1, num_steps,
                   np.mean(losses[-100:]))
    if mngr and (step + 1) % save_every_steps == 0:
      mngr.save(step + 1, args=ocp.args.StandardSave(
          jax.tree_util.tree_map(np.asarray, state)))
    if workdir and sample_every_steps and (step + 1) % sample_every_steps == 0:
      write_grid(model, state[1], evals[:16],
                 os.path.join(workdir, f"recon_{step + 1:06d}.png"))
  del data_rng
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


def run(config, workdir: str, out_dir: str, num_steps: int | None = None
        ) -> dict:
  """Trains config.diffae.preset on the run's training images; writes
  out_dir in the converted-weights layout (float16)."""
  from diffinf_jax import data
  from diffinf_jax.convert import common
  a = config.diffae
  cfg = diffae_models.get_preset(a.preset)
  ds = data.get_dataset(config, workdir)
  train_images = ds.images("train")
  val_images = ds.images("val")[:16]
  ema, metrics = train(
      train_images, cfg, num_steps=int(num_steps or a.train.num_steps),
      batch_size=int(a.train.batch_size), lr=float(a.train.lr),
      ema_decay=float(a.train.ema_decay), seed=int(config.seed),
      workdir=os.path.join(workdir, "diffae_train"),
      save_every_steps=int(a.train.save_every_steps),
      sample_every_steps=int(a.train.sample_every_steps),
      eval_images=val_images if len(val_images) else None)
  manifest = {"kind": "diffae", "source_file": "", "source_sha256": "",
              "source_prefix": "", "num_source_keys": 0, "dtype": "float16",
              "trained_on": {"data": config.data.name,
                             "image_size": int(config.data.image_size),
                             "split": "train"}, "metrics": metrics}
  common.write_converted(out_dir, ema, cfg.to_dict(), manifest,
                         dtype="float16")
  return metrics
