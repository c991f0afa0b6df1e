"""Per-sample suspicion scores: higher = more likely mislabeled.

  self_influence  TracIn: sum over (selected) checkpoints of
                  lr_t * ||grad_theta loss_i(theta_t)||^2, all parameters
  last_layer      the same sum restricted to the final Dense layer, in
                  closed form from its input a_i and softmax p_i:
                  ||grad_W||^2 + ||grad_b||^2 = (||a_i||^2 + 1) ||p_i - e_y||^2
  small_loss      cross-entropy of the assigned label, -log p_i[y_i]
                  (the large-loss end; Arpit et al. 2017, Han et al. 2018)
  ensemble        the mean of the detectors' normalised ranks
Confident learning (cleanlab) is in `confident.py`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Keeps log() finite for a probability that underflowed to 0.
_MIN_PROB = 1e-12


def self_influence(per_checkpoint: np.ndarray,
                   selected: np.ndarray | None = None) -> np.ndarray:
  """TracIn self-influence summed over the selected checkpoints.

  Args:
    per_checkpoint: [C, N] lr_t * ||grad loss_i(theta_t)||^2 (training order).
    selected: checkpoint indices from `checkpoints.select_checkpoints`
      (None: all, the paper's sum).

  Returns:
    [N] float64.
  """
  per = np.asarray(per_checkpoint, np.float64)
  if per.ndim != 2:
    raise ValueError(f"per_checkpoint must be [C, N]; got shape {per.shape}")
  if selected is not None:
    per = per[np.asarray(selected, np.int64)]
  return per.sum(0)


def last_layer(features: np.ndarray, probs: np.ndarray, labels: np.ndarray,
               learning_rates: Sequence[float] | None = None) -> np.ndarray:
  """TracIn restricted to the last Dense layer, from its inputs and outputs.

  For logits = W a + b and cross-entropy, grad_W = a (p - e_y)^T and
  grad_b = p - e_y, so the squared norm needs no backward pass.

  Args:
    features: [N, D] input of the final Dense layer (the head's hidden
      activation), or [C, N, D] one per checkpoint.
    probs: [N, K] softmax outputs, or [C, N, K] matching `features`.
    labels: [N] int assigned labels.
    learning_rates: [C] lr_t per checkpoint (None: all 1).

  Returns:
    [N] float64 sum_t lr_t (||a_i||^2 + 1) ||p_i - e_{y_i}||^2.
  """
  a = np.asarray(features, np.float64)
  p = np.asarray(probs, np.float64)
  if a.ndim == 2:
    a, p = a[None], p[None]
  if a.ndim != 3 or p.ndim != 3 or a.shape[:2] != p.shape[:2]:
    raise ValueError(f"features {np.shape(features)} and probs "
                     f"{np.shape(probs)} must be [N, D] and [N, K] (or [C, N, "
                     "D] and [C, N, K])")
  labels = np.asarray(labels)
  lrs = (np.ones(a.shape[0]) if learning_rates is None
         else np.asarray(learning_rates, np.float64))
  if lrs.shape != (a.shape[0],):
    raise ValueError(f"{lrs.size} learning rates for {a.shape[0]} "
                     "checkpoints")
  residual = p.copy()
  residual[:, np.arange(labels.size), labels] -= 1.0
  sq = (np.sum(a * a, -1) + 1.0) * np.sum(residual * residual, -1)
  return np.tensordot(lrs, sq, axes=1)


def small_loss(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
  """Cross-entropy of the assigned label: [N] float64, -log p[y]."""
  p = np.asarray(probs, np.float64)
  labels = np.asarray(labels)
  return -np.log(np.maximum(p[np.arange(labels.size), labels], _MIN_PROB))


def normalised_ranks(score: np.ndarray) -> np.ndarray:
  """[N] ranks of `score` scaled to [0, 1] (ties share their mean rank)."""
  from scipy.stats import rankdata
  score = np.asarray(score, np.float64)
  if score.size < 2:
    return np.zeros(score.size)
  return (rankdata(score, method="average") - 1.0) / (score.size - 1.0)


def ensemble(scores: Sequence[np.ndarray],
             weights: Sequence[float] | None = None) -> np.ndarray:
  """Weighted mean of the detectors' normalised ranks.

  Ranks make detectors on different scales (loss, squared gradient norms,
  1 - probability) commensurable without calibration.

  Args:
    scores: M arrays [N], each higher = more suspicious.
    weights: [M] non-negative (None: equal).

  Returns:
    [N] float64 in [0, 1].
  """
  if not scores:
    raise ValueError("ensemble of no detectors")
  ranks = np.stack([normalised_ranks(s) for s in scores])
  w = (np.ones(len(scores)) if weights is None
       else np.asarray(weights, np.float64))
  if w.shape != (len(scores),) or np.any(w < 0) or w.sum() <= 0:
    raise ValueError(f"ensemble weights {list(w)}: need {len(scores)} "
                     "non-negative values, not all 0")
  return np.tensordot(w / w.sum(), ranks, axes=1)
