"""Classification metrics: clu collections for training, numpy for evaluation.

(No `from __future__ import annotations` here: clu 0.0.12 reads the
Collection annotations as objects.)

The numpy functions follow scikit-learn's definitions (tested against it):
accuracy_score, roc_auc_score(multi_class='ovr', average='macro',
labels=range(K)) and cohen_kappa_score(weights=None|'linear'|'quadratic',
labels=range(K)).
"""


import flax.struct
import numpy as np
from clu import metrics as clu_metrics


@flax.struct.dataclass
class TrainMetrics(clu_metrics.Collection):
  loss: clu_metrics.Average.from_output("loss")
  accuracy: clu_metrics.Average.from_output("accuracy")


def accuracy(labels: np.ndarray, pred: np.ndarray) -> float:
  labels, pred = np.asarray(labels), np.asarray(pred)
  return float(np.mean(labels == pred)) if labels.size else float("nan")


def binary_auroc(positive: np.ndarray, score: np.ndarray) -> float:
  """Area under the ROC curve (Mann-Whitney U, ties count one half).

  Returns NaN when only one class is present (AUROC is undefined).
  """
  positive = np.asarray(positive, bool)
  score = np.asarray(score, np.float64)
  n_pos = int(positive.sum())
  n_neg = positive.size - n_pos
  if n_pos == 0 or n_neg == 0:
    return float("nan")
  order = np.argsort(score, kind="mergesort")
  sorted_score = score[order]
  ranks = np.empty(score.size, np.float64)
  # Average ranks over tied groups.
  boundaries = np.flatnonzero(np.diff(sorted_score)) + 1
  starts = np.concatenate([[0], boundaries])
  ends = np.concatenate([boundaries, [score.size]])
  for s, e in zip(starts, ends):
    ranks[order[s:e]] = (s + e + 1) / 2.0
  u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
  return float(u / (n_pos * n_neg))


def per_class_auroc(probs: np.ndarray, labels: np.ndarray,
                    num_classes: int) -> np.ndarray:
  """[K] one-vs-rest AUROC per class; NaN for a class absent from labels."""
  probs, labels = np.asarray(probs), np.asarray(labels)
  return np.array([binary_auroc(labels == k, probs[:, k])
                   for k in range(num_classes)])


def auroc_macro_ovr(probs: np.ndarray, labels: np.ndarray,
                    num_classes: int) -> float:
  """Macro one-vs-rest AUROC over classes 0..K-1 from softmax probabilities.

  Equals sklearn's roc_auc_score(labels, probs, multi_class='ovr',
  average='macro', labels=range(K)) when every class occurs in `labels`.
  sklearn raises when a class is absent; here such classes are left out of
  the macro average explicitly (their per-class AUROC is NaN), and the result
  is NaN only if no class has a defined AUROC.
  """
  per = per_class_auroc(probs, labels, num_classes)
  if np.all(np.isnan(per)):
    return float("nan")
  return float(np.nanmean(per))


def confusion_matrix(labels: np.ndarray, pred: np.ndarray,
                     num_classes: int) -> np.ndarray:
  """[K, K] counts: rows true class, columns predicted class."""
  out = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(out, (np.asarray(labels), np.asarray(pred)), 1)
  return out


def cohen_kappa(labels: np.ndarray, pred: np.ndarray, num_classes: int,
                weights: str | None = None) -> float:
  """Cohen's kappa over classes 0..K-1; weights None, 'linear', 'quadratic'.

  kappa = 1 - sum(W * O) / sum(W * E), O the confusion matrix, E the outer
  product of its marginals / N, W_ij = 1 - [i == j], |i - j| or (i - j)^2.
  """
  o = confusion_matrix(labels, pred, num_classes).astype(np.float64)
  n = o.sum()
  if n == 0:
    return float("nan")
  e = np.outer(o.sum(axis=1), o.sum(axis=0)) / n
  i, j = np.indices((num_classes, num_classes))
  if weights is None:
    w = (i != j).astype(np.float64)
  elif weights == "linear":
    w = np.abs(i - j).astype(np.float64)
  elif weights == "quadratic":
    w = ((i - j) ** 2).astype(np.float64)
  else:
    raise ValueError(f"kappa weights {weights!r}: use None, 'linear' or "
                     "'quadratic'")
  denom = (w * e).sum()
  if denom == 0:
    return float("nan")
  return float(1.0 - (w * o).sum() / denom)


def per_class_accuracy(labels: np.ndarray, pred: np.ndarray,
                       num_classes: int) -> list[float]:
  labels, pred = np.asarray(labels), np.asarray(pred)
  return [float(np.mean(pred[labels == k] == k)) if np.any(labels == k)
          else float("nan") for k in range(num_classes)]


def classification_report(probs: np.ndarray, labels: np.ndarray,
                          num_classes: int) -> dict:
  """All evaluation metrics of softmax probabilities [N, K] vs labels [N]."""
  probs = np.asarray(probs, np.float64)
  labels = np.asarray(labels)
  if not np.all(np.isfinite(probs)):
    raise ValueError("predicted probabilities contain NaN/inf; the "
                     "classifier diverged")
  pred = probs.argmax(axis=1)
  return {
      "accuracy": accuracy(labels, pred),
      "auroc_macro_ovr": auroc_macro_ovr(probs, labels, num_classes),
      "auroc_per_class": [None if np.isnan(a) else float(a) for a in
                          per_class_auroc(probs, labels, num_classes)],
      "kappa_linear": cohen_kappa(labels, pred, num_classes, "linear"),
      "kappa": cohen_kappa(labels, pred, num_classes, None),
      "per_class_accuracy": per_class_accuracy(labels, pred, num_classes),
      "confusion_matrix": confusion_matrix(labels, pred, num_classes).tolist(),
      "num_test": int(labels.size),
  }
