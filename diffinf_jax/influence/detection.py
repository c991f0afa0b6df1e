"""How well self-influence finds the labels we flipped: the top-tau% flagged set.

The noise is injected by us, so the flip mask is known: precision and recall
of the flagged set against flipped labels, the AUROC of the score as a flip
detector, and the precision of a random selection (the flip rate).
"""

from __future__ import annotations

import os

import numpy as np

from diffinf_jax import fileio


def binary_auroc(labels: np.ndarray, scores: np.ndarray) -> float:
  """ROC AUC of `scores` for binary `labels` (ties count 1/2; NaN if 1 class).

  Mann-Whitney U with mid-ranks: P(score of a positive > a negative's).
  """
  labels = np.asarray(labels, bool)
  scores = np.asarray(scores, np.float64)
  pos, neg = labels.sum(), (~labels).sum()
  if pos == 0 or neg == 0:
    return float("nan")
  order = np.argsort(scores, kind="mergesort")
  ranks = np.empty(len(scores), np.float64)
  sorted_scores = scores[order]
  # Mid-ranks for ties.
  _, first, counts = np.unique(sorted_scores, return_index=True,
                               return_counts=True)
  mid = first + (counts - 1) / 2.0 + 1.0
  ranks[order] = np.repeat(mid, counts)
  u = ranks[labels].sum() - pos * (pos + 1) / 2.0
  return float(u / (pos * neg))


def flag_top(scores: np.ndarray, tau: float) -> np.ndarray:
  """Boolean mask of the ceil(tau * N) highest scores (ties by lower index)."""
  if not 0.0 < tau <= 1.0:
    raise ValueError(f"influence.tau={tau}: must be in (0, 1]")
  n = len(scores)
  k = int(np.ceil(tau * n))
  order = np.argsort(-np.asarray(scores), kind="stable")
  mask = np.zeros(n, bool)
  mask[order[:k]] = True
  return mask


def detection_metrics(scores: np.ndarray, flipped: np.ndarray,
                      tau: float) -> dict:
  """tau, num_flagged, precision, recall, auroc_flip, random_precision."""
  flipped = np.asarray(flipped, bool)
  flagged = flag_top(scores, tau)
  hits = int(np.sum(flagged & flipped))
  num_flipped = int(flipped.sum())
  return {
      "tau": float(tau),
      "num_flagged": int(flagged.sum()),
      "num_samples": int(len(scores)),
      "num_flipped": num_flipped,
      "precision": hits / max(int(flagged.sum()), 1),
      "recall": hits / num_flipped if num_flipped else float("nan"),
      "auroc_flip": binary_auroc(flipped, scores),
      "random_precision": num_flipped / max(len(scores), 1),
  }


def plot_histograms(path: str, scores: np.ndarray, flipped: np.ndarray,
                    threshold: float) -> None:
  """PNG of log-score histograms, clean vs flipped, with the flag threshold."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  flipped = np.asarray(flipped, bool)
  logs = np.log10(np.maximum(scores, 1e-30))
  bins = np.linspace(logs.min(), logs.max() + 1e-9, 40)
  fig, ax = plt.subplots(figsize=(6, 3.5))
  ax.hist(logs[~flipped], bins, alpha=0.6, label="clean", density=True)
  ax.hist(logs[flipped], bins, alpha=0.6, label="flipped", density=True)
  ax.axvline(np.log10(max(threshold, 1e-30)), color="k", ls="--",
             label="top-tau threshold")
  ax.set_xlabel("log10 self-influence")
  ax.set_ylabel("density")
  ax.legend()
  fig.tight_layout()
  with fileio.atomic_path(path) as tmp:
    fig.savefig(tmp, format="png", dpi=100)
  plt.close(fig)


def plot_top_grid(path: str, images: np.ndarray, labels: np.ndarray,
                  clean_labels: np.ndarray, scores: np.ndarray,
                  class_names: list[str] | None = None) -> None:
  """PNG grid of images (highest score first) titled assigned / true label.

  Args:
    images: [k, H, W, 3] float in [-1, 1] or uint8.
  """
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  k = len(images)
  cols = min(8, max(k, 1))
  rows = max(1, -(-k // cols))
  fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.9 * rows),
                           squeeze=False)
  name = (lambda c: class_names[c] if class_names and c >= 0 else str(c))
  for ax in axes.ravel():
    ax.axis("off")
  for i in range(k):
    img = images[i]
    if img.dtype != np.uint8:
      img = np.clip((img + 1.0) * 127.5, 0, 255).astype(np.uint8)
    ax = axes.ravel()[i]
    ax.imshow(img)
    wrong = clean_labels[i] >= 0 and clean_labels[i] != labels[i]
    ax.set_title(f"y={name(labels[i])} true={name(clean_labels[i])}",
                 fontsize=7, color="red" if wrong else "black")
  fig.tight_layout()
  with fileio.atomic_path(path) as tmp:
    fig.savefig(tmp, format="png", dpi=100)
  plt.close(fig)


def write_detection(out_dir: str, scores: np.ndarray, arrays: dict,
                    tau: float, top_k: int) -> dict:
  """detection.json, histograms.png and top_flagged.png in `out_dir`.

  Args:
    scores: [N] in the row order of `arrays` (`label`, `clean_label`,
      `image`).
  """
  clean = arrays.get("clean_label", np.full(len(scores), -1))
  known = clean >= 0
  flipped = known & (clean != arrays["label"])
  metrics = detection_metrics(scores[known], flipped[known], tau)
  order = np.argsort(-scores, kind="stable")
  flagged = flag_top(scores, tau)
  threshold = float(scores[flagged].min()) if flagged.any() else 0.0
  plot_histograms(os.path.join(out_dir, "histograms.png"), scores[known],
                  flipped[known], threshold)
  top = order[:top_k]
  plot_top_grid(os.path.join(out_dir, "top_flagged.png"),
                arrays["image"][top], arrays["label"][top], clean[top],
                scores[top])
  fileio.write_json(os.path.join(out_dir, "detection.json"), metrics)
  return metrics
