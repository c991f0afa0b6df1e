"""Moving z_sem toward a class: DiffAE's attribute manipulation as a start.

DiffAE (Preechakul et al. 2022, sec. 5.2) edits attributes with a linear
classifier on the normalised semantic code, z_n = (z - mean) / std, moving
z_n along the classifier's direction. Here the classifier is fitted on the
training split's ASSIGNED labels (the only labels a user has; with a
minority of flips, the direction is still the class's), and each flagged
sample is moved toward its assigned class y only as far as needed: fixed
length steps up the probe's log p(y | z_n) until p(y) reaches `target_prob`
(or the path reaches `max_shift`). A sample that
already shows its label is not moved (s = 0), so the shift cannot spoil the
correctly labelled images; the latent optimisation then starts from z'.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np


@flax.struct.dataclass
class LinearProbe:
  """A softmax classifier on normalised z_sem.

  mean, std: [D]; weight: [D, K]; bias: [K].
  """
  mean: jnp.ndarray
  std: jnp.ndarray
  weight: jnp.ndarray
  bias: jnp.ndarray

  @property
  def num_classes(self) -> int:
    return int(self.weight.shape[1])


def fit_probe(z: np.ndarray, labels: np.ndarray, num_classes: int, *,
              inverse_reg: float = 1.0) -> LinearProbe:
  """Multinomial logistic regression (scikit-learn, L2, deterministic lbfgs).

  Args:
    z: [N, D] semantic codes; labels: [N] ints in 0..K-1 (K = num_classes).
    inverse_reg: scikit-learn's C (larger: weaker L2 penalty).

  Raises:
    ValueError: shapes disagree, a label outside 0..K-1, a class without
      samples, or non-finite codes.
  """
  from sklearn.linear_model import LogisticRegression
  z = np.asarray(z, np.float64)
  labels = np.asarray(labels)
  if z.ndim != 2 or labels.shape != (len(z),):
    raise ValueError(f"latent probe: z must be [N, D] and labels [N]; got "
                     f"{z.shape} and {labels.shape}")
  if not np.all(np.isfinite(z)):
    raise ValueError("latent probe: the semantic codes contain NaN/inf")
  counts = np.bincount(labels, minlength=num_classes)
  if labels.min() < 0 or labels.max() >= num_classes or np.any(counts == 0):
    raise ValueError(f"latent probe: labels must cover 0..{num_classes - 1}; "
                     f"class counts {counts.tolist()}")
  mean, std = z.mean(0), z.std(0) + 1e-6
  clf = LogisticRegression(C=float(inverse_reg), max_iter=2000)
  clf.fit((z - mean) / std, labels)
  weight, bias = clf.coef_.T, clf.intercept_
  if num_classes == 2:  # scikit-learn keeps one row for two classes
    weight = np.concatenate([-weight / 2, weight / 2], axis=1)
    bias = np.array([-bias[0] / 2, bias[0] / 2])
  return LinearProbe(*(jnp.asarray(a, jnp.float32)
                       for a in (mean, std, weight, bias)))


def probe_logits(probe: LinearProbe, z) -> jnp.ndarray:
  """Logits [B, K] for codes z [B, D]."""
  return ((z - probe.mean) / probe.std) @ probe.weight + probe.bias


def class_directions(probe: LinearProbe) -> jnp.ndarray:
  """Unit directions [K, D] in the normalised space at uniform
  probabilities, w_y - mean_k w_k (the first step of `shift_toward`)."""
  d = (probe.weight - probe.weight.mean(1, keepdims=True)).T
  return d / jnp.linalg.norm(d, axis=1, keepdims=True)


def shift_toward(probe: LinearProbe, z, labels, max_shift: float,
                 target_prob: float, num_steps: int = 32):
  """Moves codes z [B, D] toward classes labels [B] (module docstring).

  Normalised gradient ascent on log p(y | z_n): steps of length
  max_shift / num_steps along (w_y - sum_k p_k w_k) / ||.||, the direction
  that raises p(y) fastest where the sample is (for a class between two
  others the fixed direction w_y - mean_k w_k may never reach it); a sample
  stops as soon as p(y) >= target_prob.

  Returns:
    (z' [B, D], s [B]): shifted codes and path lengths (normalised units).
  """
  step = max_shift / num_steps
  onehot = jax.nn.one_hot(labels, probe.num_classes)

  def move(carry, _):
    zn, s = carry
    p = jax.nn.softmax(zn @ probe.weight + probe.bias, -1)
    go = jnp.sum(p * onehot, -1) < target_prob
    g = (onehot - p) @ probe.weight.T
    g = g / jnp.maximum(jnp.linalg.norm(g, axis=1, keepdims=True), 1e-12)
    return (zn + jnp.where(go[:, None], step * g, 0.0),
            s + jnp.where(go, step, 0.0)), None

  zn = (z - probe.mean) / probe.std
  (zn_end, s), _ = jax.lax.scan(move, (zn, jnp.zeros(z.shape[0])), None,
                                length=num_steps)
  # z + (zn_end - zn) std == denormalise(zn_end), exact where nothing moved.
  return z + (zn_end - zn) * probe.std, s
