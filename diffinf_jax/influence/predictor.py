"""Influence predictor h_omega: P(high influence | image, assigned label).

A small MLP on the frozen classifier's penultimate features g(x) (final
checkpoint), standardised, concatenated with the one-hot assigned label. It is
fit with binary cross-entropy on the pseudo-labels "in the flagged set" (the
paper: the top tau % self-influence; here whichever detector made the run's
flagged set) using one partition of the training split and evaluated by
AUROC on the other. `make_p_high_fn` composes classifier and predictor into a
function of the image that the correction stage differentiates.

Pure compute: features and scores in, parameters and metrics out; the
predictor stage (`diffinf_jax.pipeline.predictor`) stores them.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from diffinf_jax import metrics as metrics_lib


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
    raise ValueError(f"predictor.fit_fraction={fit_fraction}: must be in "
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


def train_and_evaluate(features: np.ndarray, labels: np.ndarray,
                       flagged: np.ndarray, *, num_classes: int, hidden: int,
                       num_epochs: int, lr: float, batch_size: int,
                       fit_fraction: float, seed: int) -> dict:
  """Fits h_omega on one partition, AUROC on the other. Pure numpy in/out.

  Args:
    features: [N, F] classifier features g(x); labels: [N] assigned labels.
    flagged: [N] bool, membership of the flagged set (the target: "high
      influence" in the paper, whichever detector made the set).
  """
  targets = np.asarray(flagged, bool).astype(np.float32)
  fit_rows, eval_rows = split_partitions(len(targets), fit_fraction, seed)
  mean = features[fit_rows].mean(0)
  std = features[fit_rows].std(0) + 1e-6
  z = np.asarray(predictor_inputs(jnp.asarray(features), jnp.asarray(labels),
                                  mean, std, num_classes))
  params = fit(z[fit_rows], targets[fit_rows], hidden=hidden,
               num_epochs=num_epochs, lr=lr, batch_size=batch_size, seed=seed)
  logits = predict_logits(params, z[eval_rows], hidden)
  metrics = {
      "auroc": metrics_lib.binary_auroc(targets[eval_rows] > 0.5, logits),
      "train_size": int(len(fit_rows)),
      "eval_size": int(len(eval_rows)),
      "train_positive_rate": float(targets[fit_rows].mean()),
      "eval_positive_rate": float(targets[eval_rows].mean()),
  }
  return {"params": params, "mean": mean, "std": std, "metrics": metrics,
          "input_dim": int(z.shape[1])}
