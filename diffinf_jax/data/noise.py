"""Synthetic label noise, injected into the training split only.

Symmetric noise (as in the DiffInf paper): exactly round(rate * N) training
samples are chosen with a seed, and each chosen label is replaced by a label
drawn uniformly from the OTHER K - 1 classes, so a flip never keeps its label.
Pair noise: each chosen label i becomes (i + 1) mod K (ordinal neighbours).
"""

from __future__ import annotations

import numpy as np


def inject_noise(labels: np.ndarray, num_classes: int, rate: float,
                 seed: int, kind: str = "symmetric"
                 ) -> tuple[np.ndarray, np.ndarray]:
  """Flips an exact fraction of labels.

  Args:
    labels: [N] int clean labels in [0, num_classes).
    num_classes: K >= 2.
    rate: fraction in [0, 1) of samples to flip; exactly round(rate * N).
    seed: seed of the choice of samples and of the new labels.
    kind: 'symmetric' (uniform over the other classes) or 'pair' (i -> i+1).

  Returns:
    noisy: [N] int32 labels; flipped: [N] bool, True where noisy != clean.
  """
  labels = np.asarray(labels)
  if not 0.0 <= rate < 1.0:
    raise ValueError(f"noise rate {rate}: must lie in [0, 1)")
  if num_classes < 2:
    raise ValueError(f"label noise needs >= 2 classes, got {num_classes}")
  if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
    bad = labels[(labels < 0) | (labels >= num_classes)][0]
    raise ValueError(f"label {bad} out of range [0, {num_classes})")
  n = labels.shape[0]
  num_flip = int(round(rate * n))
  rng = np.random.default_rng(seed)
  chosen = rng.choice(n, size=num_flip, replace=False)
  noisy = labels.astype(np.int32).copy()
  if kind == "symmetric":
    # An offset in [1, K-1] added mod K is uniform over the other classes.
    offset = rng.integers(1, num_classes, size=num_flip)
  elif kind == "pair":
    offset = np.ones(num_flip, np.int64)
  else:
    raise ValueError(f"noise kind {kind!r}: use 'symmetric' or 'pair'")
  noisy[chosen] = (labels[chosen] + offset) % num_classes
  flipped = noisy != labels
  return noisy, flipped


def noise_statistics(clean: np.ndarray, noisy: np.ndarray, num_classes: int,
                     rate_requested: float) -> dict:
  """Realised noise: overall and per-class rates and the transition matrix.

  transition_matrix[i][j] = P(noisy = j | clean = i) over the training split.
  """
  clean = np.asarray(clean)
  noisy = np.asarray(noisy)
  counts = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(counts, (clean, noisy), 1)
  per_class_total = counts.sum(axis=1)
  with np.errstate(invalid="ignore", divide="ignore"):
    transition = counts / np.maximum(per_class_total[:, None], 1)
    per_class_rate = 1.0 - np.diag(counts) / np.maximum(per_class_total, 1)
  n = int(clean.shape[0])
  num_flipped = int((clean != noisy).sum())
  return {
      "rate_requested": float(rate_requested),
      "rate_realised": num_flipped / n if n else 0.0,
      "num_train": n,
      "num_flipped": num_flipped,
      "per_class_rate": [float(r) for r in per_class_rate],
      "per_class_count": [int(c) for c in per_class_total],
      "transition_matrix": transition.round(6).tolist(),
      "transition_counts": counts.tolist(),
  }
