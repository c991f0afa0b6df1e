"""Trainers for the demo-size guidance networks (identity and face parsing).

The demo data knows each face's identity id and its ground-truth parsing map,
so the demo can run the correction objective with the same IResNet / BiSeNet
code paths as the real networks, trained here instead of converted:

* identity: IResNet embedding -> CosFace-style margin softmax over identity
  ids (logits = s * (cos(e, w_k) - m * [k = y])); only the backbone is kept.
* parsing: BiSeNet, per-pixel cross-entropy on the main and both auxiliary
  heads (as upstream's training, without OHEM).

Both take plain arrays (so they are testable with random data) and return
variables in the same {'params', 'batch_stats'} layout as the converters.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from diffinf_jax.models.guidance import arcface
from diffinf_jax.models.guidance import face_parsing
from diffinf_jax.models.guidance import transforms


@dataclasses.dataclass(frozen=True)
class TrainSettings:
  num_steps: int = 300
  batch_size: int = 64
  lr: float = 2e-3
  weight_decay: float = 5e-4
  seed: int = 0
  margin: float = 0.2       # identity: additive cosine margin
  scale: float = 16.0       # identity: logit scale s
  log_every: int = 50


class _IdentityClassifier(nn.Module):
  """Backbone + normalised class weights (the head is dropped after training)."""
  config: arcface.ArcFaceConfig
  num_ids: int

  @nn.compact
  def __call__(self, x, train: bool):
    emb = arcface.IResNet(self.config, name="backbone")(x, train)
    w = self.param("centers", nn.initializers.normal(1.0),
                   (self.config.num_features, self.num_ids))
    e = emb / (jnp.linalg.norm(emb, axis=-1, keepdims=True) + 1e-8)
    w = w / (jnp.linalg.norm(w, axis=0, keepdims=True) + 1e-8)
    return e @ w  # cosines [B, num_ids]


def _optimizer(s: TrainSettings):
  sched = optax.cosine_decay_schedule(s.lr, max(s.num_steps, 1))
  return optax.adamw(sched, weight_decay=s.weight_decay)


def _batches(n: int, s: TrainSettings):
  rng = np.random.default_rng(s.seed)
  perm = np.array([], np.int64)
  for _ in range(s.num_steps):
    if len(perm) < s.batch_size:
      perm = np.concatenate([perm, rng.permutation(n)])
    idx, perm = perm[:s.batch_size], perm[s.batch_size:]
    flip = rng.random(len(idx)) < 0.5
    yield idx, flip


def _make_step(loss_fn, tx):
  """Jitted (params, stats, opt_state, x, y) -> (params, stats, opt_state,
  loss, accuracy) for `loss_fn(params, stats, x, y) -> (loss, (stats, acc))`."""
  @jax.jit
  def step(params, stats, opt_state, x, y):
    (loss, (stats, acc)), g = jax.value_and_grad(loss_fn, has_aux=True)(
        params, stats, x, y)
    updates, opt_state = tx.update(g, opt_state, params)
    return optax.apply_updates(params, updates), stats, opt_state, loss, acc
  return step


def _flip(x, flip):
  return np.where(flip[:, None, None, None], x[:, :, ::-1], x)


def identity_inputs(images: np.ndarray, cfg: arcface.ArcFaceConfig,
                    crop: transforms.FaceCrop) -> np.ndarray:
  """Applies the loss-time crop so training sees the same inputs."""
  out = jax.jit(lambda x: transforms.arcface_input(x, crop))(images)
  return np.asarray(out)


def train_identity(images: np.ndarray, identity: np.ndarray,
                   cfg: arcface.ArcFaceConfig, s: TrainSettings = TrainSettings()
                   ) -> tuple[dict, dict[str, Any]]:
  """Trains an IResNet identity embedding.

  Args:
    images: [N, h, w, 3] float32 in [-1, 1], already at cfg.input_size.
    identity: [N] int identity ids (any integers; remapped to 0..K-1).
    cfg: backbone architecture (e.g. `arcface.preset('demo')`).
    s: optimisation settings.

  Returns:
    (backbone variables {'params', 'batch_stats'}, metrics dict with the final
    training loss and nearest-center accuracy).
  """
  if images.shape[1:3] != cfg.input_size:
    raise ValueError(f"identity images are {images.shape[1:3]}, the network "
                     f"takes {cfg.input_size}; crop them first")
  ids, y_all = np.unique(np.asarray(identity), return_inverse=True)
  model = _IdentityClassifier(cfg, len(ids))
  variables = jax.jit(model.init, static_argnums=2)(
      jax.random.key(s.seed), jnp.zeros((1, *cfg.input_size, 3)), False)
  tx = _optimizer(s)
  opt_state = tx.init(variables["params"])

  def loss_fn(params, stats, x, y):
    cos, upd = model.apply({"params": params, "batch_stats": stats}, x, True,
                           mutable=["batch_stats"])
    logits = s.scale * (cos - s.margin * jax.nn.one_hot(y, len(ids)))
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    return loss, (upd["batch_stats"], jnp.mean(jnp.argmax(cos, -1) == y))

  step = _make_step(loss_fn, tx)

  params, stats = variables["params"], variables["batch_stats"]
  loss = acc = jnp.nan
  for i, (idx, flip) in enumerate(_batches(len(images), s)):
    x = _flip(images[idx], flip)
    params, stats, opt_state, loss, acc = step(params, stats, opt_state, x,
                                               y_all[idx])
    if s.log_every and (i + 1) % s.log_every == 0:
      logging.info("identity step %d: loss %.4f acc %.3f", i + 1, loss, acc)
  backbone = {"params": params["backbone"], "batch_stats": stats["backbone"]}
  return backbone, {"final_loss": float(loss), "final_batch_acc": float(acc),
                    "num_identities": int(len(ids)),
                    "num_images": int(len(images))}


def identity_verification_auc(embed: np.ndarray, identity: np.ndarray) -> float:
  """ROC AUC of cosine similarity for same- vs different-identity pairs."""
  e = embed / (np.linalg.norm(embed, axis=1, keepdims=True) + 1e-8)
  sim = e @ e.T
  same = identity[:, None] == identity[None, :]
  iu = np.triu_indices(len(e), 1)
  scores, labels = sim[iu], same[iu]
  if labels.all() or not labels.any():
    return float("nan")
  order = np.argsort(scores)
  ranks = np.empty(len(scores))
  ranks[order] = np.arange(1, len(scores) + 1)
  pos = labels.sum()
  return float((ranks[labels].sum() - pos * (pos + 1) / 2) /
               (pos * (len(labels) - pos)))


def train_parsing(images: np.ndarray, parsing: np.ndarray,
                  cfg: face_parsing.BiSeNetConfig,
                  s: TrainSettings = TrainSettings()
                  ) -> tuple[dict, dict[str, Any]]:
  """Trains a BiSeNet face parser with per-pixel cross-entropy.

  Args:
    images: [N, H, W, 3] float32 in [-1, 1] (any size; resized and
      normalised by `transforms.parsing_input` to cfg.input_size, as at loss
      time).
    parsing: [N, H, W] int class maps in [0, cfg.num_classes).
    cfg: parser architecture (e.g. `face_parsing.preset('demo')`).

  Returns:
    (variables {'params', 'batch_stats'}, metrics with pixel accuracy).
  """
  parsing = np.asarray(parsing)
  if parsing.shape != images.shape[:3]:
    raise ValueError(f"parsing maps {parsing.shape} do not match images "
                     f"{images.shape[:3]}")
  if parsing.min() < 0 or parsing.max() >= cfg.num_classes:
    raise ValueError(f"parsing classes span [{parsing.min()}, "
                     f"{parsing.max()}], the parser has {cfg.num_classes}")
  model = face_parsing.BiSeNet(cfg)
  variables = jax.jit(face_parsing.init_variables, static_argnums=0)(
      model, jax.random.key(s.seed))
  tx = _optimizer(s)
  opt_state = tx.init(variables["params"])
  size = cfg.input_size

  def loss_fn(params, stats, x, y):
    xin = transforms.parsing_input(x, size)
    outs, upd = model.apply({"params": params, "batch_stats": stats}, xin,
                            True, mutable=["batch_stats"])
    # Labels are compared at the image size: logits are resized back.
    outs = [jax.image.resize(o, (*y.shape, o.shape[-1]), "bilinear")
            for o in outs]
    loss = sum(optax.softmax_cross_entropy_with_integer_labels(o, y).mean()
               for o in outs)
    acc = jnp.mean(jnp.argmax(outs[0], -1) == y)
    return loss, (upd["batch_stats"], acc)

  step = _make_step(loss_fn, tx)

  params, stats = variables["params"], variables["batch_stats"]
  loss = acc = jnp.nan
  for i, (idx, flip) in enumerate(_batches(len(images), s)):
    x = _flip(images[idx], flip)
    # Demo classes have no left/right split, so a flipped map stays valid.
    y = np.where(flip[:, None, None], parsing[idx][:, :, ::-1], parsing[idx])
    params, stats, opt_state, loss, acc = step(params, stats, opt_state, x, y)
    if s.log_every and (i + 1) % s.log_every == 0:
      logging.info("parsing step %d: loss %.4f pixel acc %.3f", i + 1, loss,
                   acc)
  return ({"params": params, "batch_stats": stats},
          {"final_loss": float(loss), "final_batch_pixel_acc": float(acc),
           "num_images": int(len(images))})


def parsing_accuracy(variables: dict, cfg: face_parsing.BiSeNetConfig,
                     images: np.ndarray, parsing: np.ndarray,
                     batch_size: int = 64) -> float:
  """Pixel accuracy of the main head at the image size."""
  model = face_parsing.BiSeNet(cfg)

  @jax.jit
  def predict(x):
    o = model.apply(variables, transforms.parsing_input(x, cfg.input_size))[0]
    return jnp.argmax(jax.image.resize(o, (*x.shape[:3], o.shape[-1]),
                                       "bilinear"), -1)
  correct = 0
  for i in range(0, len(images), batch_size):
    correct += int((np.asarray(predict(images[i:i + batch_size])) ==
                    parsing[i:i + batch_size]).sum())
  return correct / parsing.size


def embed_all(variables: dict, cfg: arcface.ArcFaceConfig, images: np.ndarray,
              batch_size: int = 128) -> np.ndarray:
  model = arcface.IResNet(cfg)
  fn = jax.jit(lambda x: model.apply(variables, x))
  return np.concatenate([np.asarray(fn(images[i:i + batch_size]))
                         for i in range(0, len(images), batch_size)])


# --- demo runs: dataset -> trained weights in the converted-weights layout ----


def _settings(config, num_steps: int | None) -> TrainSettings:
  t = config.guidance.train
  return TrainSettings(num_steps=int(num_steps or t.num_steps),
                       batch_size=int(t.batch_size), lr=float(t.lr),
                       seed=int(t.seed))


def _save(out_dir: str, variables, cfg, kind: str, metrics: dict,
          config) -> dict:
  from diffinf_jax import weights
  manifest = {
      "kind": kind,
      "source_file": "",
      "source_sha256": "",
      "source_prefix": "",
      "num_source_keys": 0,
      "num_params": int(sum(int(np.prod(v.shape)) for v in
                            jax.tree_util.tree_leaves(variables["params"]))),
      "dtype": "float16",  # shipped demo weights stay small; loaded as fp32
      "trained_on": {"data": config.data.name, "image_size":
                     int(config.data.image_size), "split": "train"},
      "metrics": metrics,
  }
  weights.write_converted(out_dir, jax.device_get(variables), cfg.to_dict(),
                         manifest, dtype="float16")
  return manifest


def run_identity(config, ds, out_dir: str, num_steps: int | None = None
                 ) -> dict:
  """Trains the demo identity net on `ds`'s train split; writes out_dir/."""
  g = config.guidance
  cfg = arcface.preset(g.arcface_preset)
  size = int(g.arcface_input_size)
  cfg = dataclasses.replace(cfg, input_size=(size, size))
  crop = transforms.crop_preset(g.arcface_crop, cfg.input_size)
  train, val = ds.arrays("train"), ds.arrays("val")
  if "identity" not in train:
    raise KeyError(f"dataset {config.data.name!r} has no identity ids; the "
                   "identity net can only be trained on the demo data")
  x = identity_inputs(train["image"], cfg, crop)
  variables, metrics = train_identity(x, train["identity"], cfg,
                                      _settings(config, num_steps))
  if len(val["image"]) > 1:
    emb = embed_all(variables, cfg, identity_inputs(val["image"], cfg, crop))
    metrics["val_verification_auc"] = identity_verification_auc(
        emb, np.asarray(val["identity"]))
  return _save(out_dir, variables, cfg, "arcface", metrics, config)


def run_parsing(config, ds, out_dir: str, num_steps: int | None = None
                ) -> dict:
  """Trains the demo face parser on `ds`'s train split; writes out_dir/."""
  g = config.guidance
  size = int(g.parsing_input_size)
  cfg = face_parsing.preset(g.parsing_preset, input_size=(size, size))
  train, val = ds.arrays("train"), ds.arrays("val")
  if "parsing" not in train:
    raise KeyError(f"dataset {config.data.name!r} has no parsing maps; the "
                   "parser can only be trained on the demo data")
  variables, metrics = train_parsing(train["image"], train["parsing"], cfg,
                                     _settings(config, num_steps))
  if len(val["image"]):
    metrics["val_pixel_acc"] = parsing_accuracy(
        variables, cfg, val["image"], np.asarray(val["parsing"]))
  return _save(out_dir, variables, cfg, "bisenet", metrics, config)
