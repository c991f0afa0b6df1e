"""Influence predictor h_omega: P(high influence | image, assigned label).

A small MLP on the frozen classifier's penultimate features g(x) (final
checkpoint), standardised, concatenated with the one-hot assigned label. It is
fit with binary cross-entropy on pseudo-labels "score in the top tau % of the
training split" using one partition of the training split and evaluated by
AUROC on the other. `make_p_high_fn` composes classifier and predictor into a
function of the image that the correction stage differentiates.

Files in WORKDIR/predictor/: params.npz (MLP weights and feature mean/std),
config.json (sizes, tau, classifier config), metrics.json (auroc, train_size,
eval_size, positive rates).
"""

from __future__ import annotations

import os
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from diffinf_jax import fileio
from diffinf_jax.influence import detection


class InfluenceMLP(nn.Module):
  """h_omega: [B, F + K] standardised features + one-hot label -> [B] logit."""
  hidden: int = 128

  @nn.compact
  def __call__(self, z):
    h = nn.relu(nn.Dense(self.hidden, name="hidden")(z))
    return nn.Dense(1, name="out")(h)[:, 0]


def predictor_inputs(features: jax.Array, labels: jax.Array, mean: jax.Array,
                     std: jax.Array, num_classes: int) -> jax.Array:
  """[B, F] features, [B] labels -> [B, F + K] MLP inputs."""
  z = (features - mean) / std
  return jnp.concatenate(
      [z, jax.nn.one_hot(labels, num_classes, dtype=z.dtype)], axis=-1)


def split_partitions(n: int, fit_fraction: float, seed: int
                     ) -> tuple[np.ndarray, np.ndarray]:
  """Seeded disjoint (fit, eval) row sets of the training split."""
  if not 0.0 < fit_fraction < 1.0:
    raise ValueError(f"predictor.holdout_fraction={fit_fraction}: must be in "
                     "(0, 1)")
  perm = np.random.default_rng(seed).permutation(n)
  k = int(round(fit_fraction * n))
  if k == 0 or k == n:
    raise ValueError(f"predictor partitions of {n} samples with fraction "
                     f"{fit_fraction} leave one side empty")
  return np.sort(perm[:k]), np.sort(perm[k:])


def fit(inputs: np.ndarray, targets: np.ndarray, *, hidden: int,
        num_epochs: int, lr: float, batch_size: int, seed: int) -> Any:
  """Adam on class-balanced BCE; returns the MLP params.

  Positives are ~tau of the data, so each class gets half the total weight
  (otherwise "never high" is a strong minimum).
  """
  model = InfluenceMLP(hidden)
  params = model.init(jax.random.key(seed), jnp.zeros((1, inputs.shape[1])))
  tx = optax.adam(lr)
  opt = tx.init(params)
  pos = max(targets.mean(), 1e-6)
  weights = np.where(targets > 0.5, 0.5 / pos, 0.5 / max(1 - pos, 1e-6))

  @jax.jit
  def step(params, opt, z, t, w):
    def loss(p):
      logit = model.apply(p, z)
      return jnp.mean(w * optax.sigmoid_binary_cross_entropy(logit, t))
    grads = jax.grad(loss)(params)
    updates, opt = tx.update(grads, opt, params)
    return optax.apply_updates(params, updates), opt

  rng = np.random.default_rng(seed)
  n = len(targets)
  bs = min(batch_size, n)
  for _ in range(num_epochs):
    order = rng.permutation(n)
    for s in range(0, n - bs + 1, bs):
      sel = order[s:s + bs]
      params, opt = step(params, opt, inputs[sel], targets[sel], weights[sel])
  return params


def predict_logits(params, inputs: np.ndarray, hidden: int) -> np.ndarray:
  return np.asarray(InfluenceMLP(hidden).apply(params, jnp.asarray(inputs)))


def save(out_dir: str, params, mean, std, cfg: dict) -> None:
  flat = {jax.tree_util.keystr(k): np.asarray(v)
          for k, v in jax.tree_util.tree_flatten_with_path(params)[0]}
  fileio.save_npz(os.path.join(out_dir, "params.npz"), _mean=np.asarray(mean),
                  _std=np.asarray(std), **flat)
  fileio.write_json(os.path.join(out_dir, "config.json"), cfg)


def load(out_dir: str) -> tuple[Any, np.ndarray, np.ndarray, dict]:
  """(params, feature mean, feature std, config) of a saved predictor."""
  cfg = fileio.read_json(os.path.join(out_dir, "config.json"))
  arrays = fileio.load_npz(os.path.join(out_dir, "params.npz"),
                           required=("_mean", "_std"))
  template = InfluenceMLP(cfg["hidden"]).init(
      jax.random.key(0), jnp.zeros((1, cfg["input_dim"])))
  paths = jax.tree_util.tree_flatten_with_path(template)
  leaves = []
  for k, v in paths[0]:
    key = jax.tree_util.keystr(k)
    if key not in arrays or arrays[key].shape != v.shape:
      raise ValueError(f"{out_dir}/params.npz: missing or misshaped {key}; "
                       "rerun `diffinf predictor`")
    leaves.append(jnp.asarray(arrays[key]))
  params = jax.tree.unflatten(paths[1], leaves)
  return params, arrays["_mean"], arrays["_std"], cfg


def make_p_high_fn(classifier: nn.Module, classifier_variables, params, mean,
                   std, cfg: dict) -> Callable[[jax.Array, jax.Array], jax.Array]:
  """p_high(image [B,H,W,3] in [-1,1], label [B]) -> [B] in (0, 1).

  Differentiable with respect to the image through the frozen classifier
  (BatchNorm with running statistics) and the frozen predictor.
  """
  hidden, k = cfg["hidden"], cfg["num_classes"]
  mean, std = jnp.asarray(mean), jnp.asarray(std)

  def p_high(image, label):
    _, aux = classifier.apply(classifier_variables, image, train=False)
    z = predictor_inputs(aux["features"], label, mean, std, k)
    return jax.nn.sigmoid(InfluenceMLP(hidden).apply(params, z))
  return p_high


def extract_features(classifier, variables, images: np.ndarray,
                     batch_size: int) -> np.ndarray:
  """[N, F] penultimate features (classifier aux['features'], eval mode)."""
  fn = jax.jit(lambda x: classifier.apply(variables, x, train=False)[1]
               ["features"])
  out = []
  for s in range(0, len(images), batch_size):
    x = images[s:s + batch_size]
    n = len(x)
    if n < batch_size:  # fixed shape: one compilation
      x = np.concatenate([x, np.zeros((batch_size - n,) + x.shape[1:],
                                      x.dtype)])
    out.append(np.asarray(fn(x))[:n])
  return np.concatenate(out)


def train_and_evaluate(features: np.ndarray, labels: np.ndarray,
                       scores: np.ndarray, *, num_classes: int, tau: float,
                       hidden: int, num_epochs: int, lr: float,
                       batch_size: int, fit_fraction: float, seed: int
                       ) -> dict:
  """Fits h_omega on one partition, AUROC on the other. Pure numpy in/out."""
  targets = detection.flag_top(scores, tau).astype(np.float32)
  fit_rows, eval_rows = split_partitions(len(scores), fit_fraction, seed)
  mean = features[fit_rows].mean(0)
  std = features[fit_rows].std(0) + 1e-6
  z = np.asarray(predictor_inputs(jnp.asarray(features), jnp.asarray(labels),
                                  mean, std, num_classes))
  params = fit(z[fit_rows], targets[fit_rows], hidden=hidden,
               num_epochs=num_epochs, lr=lr, batch_size=batch_size, seed=seed)
  logits = predict_logits(params, z[eval_rows], hidden)
  metrics = {
      "auroc": detection.binary_auroc(targets[eval_rows] > 0.5, logits),
      "train_size": int(len(fit_rows)),
      "eval_size": int(len(eval_rows)),
      "train_positive_rate": float(targets[fit_rows].mean()),
      "eval_positive_rate": float(targets[eval_rows].mean()),
      "tau": float(tau),
  }
  return {"params": params, "mean": mean, "std": std, "metrics": metrics,
          "input_dim": int(z.shape[1])}


def run(config, workdir: str) -> dict:
  """`diffinf predictor`: fits, evaluates and saves h_omega."""
  from diffinf_jax import checkpointing
  from diffinf_jax import data as data_lib
  from diffinf_jax import models
  from diffinf_jax.influence import tracin

  inf_dir = os.path.join(workdir, "influence")
  scores = np.load(os.path.join(inf_dir, "scores.npy")) if os.path.isfile(
      os.path.join(inf_dir, "scores.npy")) else None
  if scores is None:
    raise FileNotFoundError(f"{inf_dir}/scores.npy: not found; run "
                            "`diffinf influence` first")
  index = np.load(os.path.join(inf_dir, "index.npy"))
  dataset = data_lib.get_dataset(config, workdir)
  arrays = dataset.arrays("train")
  if not np.array_equal(arrays["index"], index):
    raise ValueError(f"{inf_dir}: scores belong to other training indices "
                     "than this config's data; rerun `diffinf influence`")
  ckpt_dir = os.path.join(workdir, "train", "checkpoints")
  found = checkpointing.list_checkpoints(ckpt_dir)
  if not found:
    raise FileNotFoundError(f"{ckpt_dir}: no checkpoints; run `diffinf train`")
  step = int(found[-1]["step"])
  model = models.get_model(config.model)
  abstract = jax.eval_shape(
      lambda x: model.init(jax.random.key(0), x, train=False),
      jax.ShapeDtypeStruct((1,) + arrays["image"].shape[1:], np.float32))
  variables = checkpointing.restore_variables(ckpt_dir, step, abstract)
  tracin.check_structure(variables, abstract, f"{ckpt_dir} step {step}")
  feats = extract_features(model, variables, arrays["image"],
                           config.influence.batch_size)
  p = config.predictor
  out = train_and_evaluate(
      feats, arrays["label"], scores, num_classes=config.model.num_classes,
      tau=config.influence.tau, hidden=p.hidden, num_epochs=p.num_epochs,
      lr=p.lr, batch_size=p.batch_size, fit_fraction=p.holdout_fraction,
      seed=p.seed)
  out_dir = os.path.join(workdir, "predictor")
  save(out_dir, out["params"], out["mean"], out["std"], {
      "hidden": p.hidden, "input_dim": out["input_dim"],
      "feature_dim": int(feats.shape[1]),
      "num_classes": int(config.model.num_classes),
      "tau": float(config.influence.tau), "classifier_step": step,
      "classifier_model": config.model.to_dict()})
  fileio.write_json(os.path.join(out_dir, "metrics.json"), out["metrics"])
  return out["metrics"]
