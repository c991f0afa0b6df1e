"""`diffinf train-diffae`: train a (small) DiffAE on the run's training images."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from diffinf_jax import argtypes

if TYPE_CHECKING:  # jax and flax load only when a stage runs.
  from diffinf_jax.models import diffae as diffae_models

NAME = "train-diffae"
HELP = "train a small DiffAE (encoder + UNet, eps loss, EMA) on a dataset"
DESCRIPTION = """Train the DiffAE preset config.diffae.preset jointly (semantic encoder +
conditional UNet) with upstream's epsilon-prediction loss and an EMA of the
weights, on the training split of the config's dataset. Orbax checkpoints in
W/diffae_train/checkpoints (resumable), reconstruction and sample grids
W/diffae_train/{recon,sample}_*.png, and the EMA weights written to --out in
the layout of `diffinf convert diffae` (float16)."""
DEPENDS = ("data",)
SECTIONS = ("diffae", "seed")
PROTECT_STALE = True
OPTIONS = ("out", "steps")


def add_arguments(parser) -> None:
  parser.add_argument("--out", default=None,
                      help="weights directory (default: W/diffae_weights)")
  parser.add_argument("--steps", type=argtypes.positive_int, default=None,
                      help="training steps (default: diffae.train.num_steps)")


def run(config, workdir: str, *, out: str | None = None,
        steps: int | None = None) -> dict:
  out = out or os.path.join(workdir, "diffae_weights")
  metrics = train_and_save(config, workdir, out, steps)
  return dict(metrics, weights_dir=out)


def grid_writer(directory: str, cfg: "diffae_models.DiffAEConfig"):
  """The trainer's preview: preview(tag, params, x0) writes two PNGs into
  `directory` for images x0 [B, H, W, C] in [-1, 1]:

  `recon_{tag}.png`: originals (top) and their encode -> decode
  reconstructions (bottom); `sample_{tag}.png`: originals and a decode of a
  FIXED random x_T with each original's z_sem (upstream's training
  previews), i.e. what the semantic code alone carries.
  """
  import jax
  from diffinf_jax import plots
  from diffinf_jax.models.diffae import trainer
  enc, dec = trainer.codec(cfg, 10, 10)

  def preview(tag: str, params, x0) -> None:
    scale = max(1, 64 // x0.shape[1])
    z, x_T = enc(params, x0)
    plots.before_after_grid(np.asarray(x0), np.asarray(dec(params, z, x_T)),
                            os.path.join(directory, f"recon_{tag}.png"),
                            scale=scale)
    noise = jax.random.normal(jax.random.key(0), x0.shape)
    plots.before_after_grid(np.asarray(x0), np.asarray(dec(params, z, noise)),
                            os.path.join(directory, f"sample_{tag}.png"),
                            scale=scale)
  return preview


def summary_line(m: dict) -> str:
  return (f"train-diffae: {m['num_steps']} steps; reconstruction MSE "
          f"{m['recon_mse_init']:.4f} -> {m['recon_mse_final']:.4f}; weights "
          f"in {m['weights_dir']}")


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


def model_config(config) -> tuple["diffae_models.DiffAEConfig", dict | None,
                                  str]:
  """(architecture, initial variables or None, what they came from).

  From `diffae.train.init_weights_dir` when set (its config.json decides the
  architecture; unconditional weights get a zero class embedding when
  diffae.num_classes > 0), else `diffae.preset` with diffae.num_classes.
  """
  import dataclasses
  from diffinf_jax import weights
  from diffinf_jax.models import diffae as diffae_models
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


def train_and_save(config, workdir: str, out_dir: str,
                   num_steps: int | None = None,
                   max_seconds: float = 0.0) -> dict:
  """Trains the DiffAE of config.diffae on the run's training images
  (checkpoints and previews in W/diffae_train); writes out_dir in the
  converted-weights layout (float16). `max_seconds` > 0 caps the training
  time (`trainer.train`)."""
  from diffinf_jax import checkpointing
  from diffinf_jax import weights
  from diffinf_jax.models.diffae import trainer
  a = config.diffae
  cfg, init, origin = model_config(config)
  images, labels, val_images, provenance = training_data(config)
  t = a.train
  train_dir = os.path.join(workdir, "diffae_train")
  ema, metrics = trainer.train(
      images, cfg, num_steps=int(num_steps or t.num_steps),
      batch_size=int(t.batch_size), lr=float(t.lr),
      ema_decay=float(t.ema_decay), seed=int(config.seed),
      checkpoints=checkpointing.StateCheckpoints(
          os.path.join(train_dir, "checkpoints")),
      save_every_steps=int(t.save_every_steps),
      preview=grid_writer(train_dir, cfg),
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
