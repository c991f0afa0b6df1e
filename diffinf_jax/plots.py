"""Every figure the stages write (PNG, atomically): one home for matplotlib.

Figures take plain arrays and a path; nothing here computes a result.
"""

from __future__ import annotations

import io
import os

import numpy as np

from diffinf_jax import fileio
from diffinf_jax.data import pipeline


def _pyplot():
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  return plt


def _save(fig, path: str, dpi: int = 90) -> None:
  plt = _pyplot()
  fig.tight_layout()
  with fileio.atomic_path(path) as tmp:
    fig.savefig(tmp, format="png", dpi=dpi)
  plt.close(fig)


def png_bytes(image_uint8: np.ndarray) -> bytes:
  """PNG encoding of one [H, W, 3] uint8 image."""
  from PIL import Image
  buf = io.BytesIO()
  Image.fromarray(image_uint8).save(buf, format="PNG")
  return buf.getvalue()


def write_pngs(out_dir: str, index: np.ndarray, images: np.ndarray) -> None:
  """One PNG per dataset index, `out_dir/{index:06d}.png`; images in [-1, 1]
  or uint8."""
  os.makedirs(out_dir, exist_ok=True)
  for i, img in zip(index, pipeline.to_uint8(images)):
    fileio.write_bytes(os.path.join(out_dir, f"{int(i):06d}.png"),
                       png_bytes(img))


def learning_curves(history: list[dict], path: str) -> None:
  """Loss and accuracy per epoch, train and val."""
  plt = _pyplot()
  epochs = [h["epoch"] for h in history]
  fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
  for ax, key in zip(axes, ("loss", "accuracy")):
    for split in ("train", "val"):
      vals = [h.get(f"{split}_{key}") for h in history]
      if any(v is not None for v in vals):
        ax.plot(epochs, vals, marker="o", label=split)
    ax.set_xlabel("epoch")
    ax.set_title(key)
    ax.legend()
  axes[0].set_ylabel("cross-entropy (assigned labels on train)")
  _save(fig, path)


def confusion(confusion_matrix, class_names, path: str) -> None:
  """A [K, K] confusion matrix (rows true, columns predicted) with counts."""
  plt = _pyplot()
  cm = np.asarray(confusion_matrix)
  fig, ax = plt.subplots(figsize=(3.5 + 0.4 * len(cm), 3 + 0.4 * len(cm)))
  ax.imshow(cm, cmap="Blues")
  for i in range(len(cm)):
    for j in range(len(cm)):
      ax.text(j, i, str(cm[i, j]), ha="center", va="center",
              color="white" if cm[i, j] > cm.max() / 2 else "black")
  ax.set_xticks(range(len(cm)), class_names, rotation=30)
  ax.set_yticks(range(len(cm)), class_names)
  ax.set_xlabel("predicted")
  ax.set_ylabel("true")
  _save(fig, path)


def score_histograms(path: str, scores: np.ndarray, flipped: np.ndarray,
                     threshold: float, xlabel: str = "self-influence") -> None:
  """log10-score densities of clean vs flipped samples, with the threshold."""
  plt = _pyplot()
  flipped = np.asarray(flipped, bool)
  logs = np.log10(np.maximum(scores, 1e-30))
  bins = np.linspace(logs.min(), logs.max() + 1e-9, 40)
  fig, ax = plt.subplots(figsize=(6, 3.5))
  ax.hist(logs[~flipped], bins, alpha=0.6, label="clean", density=True)
  ax.hist(logs[flipped], bins, alpha=0.6, label="flipped", density=True)
  ax.axvline(np.log10(max(threshold, 1e-30)), color="k", ls="--",
             label="flag threshold")
  ax.set_xlabel(f"log10 {xlabel}")
  ax.set_ylabel("density")
  ax.legend()
  _save(fig, path, dpi=100)


def labelled_grid(path: str, images: np.ndarray, labels: np.ndarray,
                  clean_labels: np.ndarray, class_names=None) -> None:
  """Images titled `y=<assigned> true=<clean>` (red where they differ).

  Args:
    images: [k, H, W, 3] float in [-1, 1] or uint8.
    labels, clean_labels: [k] ints (clean -1 = unknown).
    class_names: optional names indexed by class.
  """
  plt = _pyplot()
  k = len(images)
  cols = min(8, max(k, 1))
  rows = max(1, -(-k // cols))
  fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.9 * rows),
                           squeeze=False)
  name = (lambda c: class_names[c] if class_names is not None and c >= 0
          else str(c))
  for ax in axes.ravel():
    ax.axis("off")
  for i, img in enumerate(pipeline.to_uint8(images)):
    ax = axes.ravel()[i]
    ax.imshow(img)
    wrong = clean_labels[i] >= 0 and clean_labels[i] != labels[i]
    ax.set_title(f"y={name(labels[i])} true={name(clean_labels[i])}",
                 fontsize=7, color="red" if wrong else "black")
  _save(fig, path, dpi=100)


def before_after_grid(before: np.ndarray, after: np.ndarray, path: str,
                      scale: int = 1) -> None:
  """Two rows per group of up to 8 samples: originals above, edits below
  (the paper's Figures 2-3); pixels repeated `scale` times."""
  n = len(before)
  cols = min(8, n)
  rows = []
  for start in range(0, n, cols):
    for imgs in (before[start:start + cols], after[start:start + cols]):
      imgs = pipeline.to_uint8(imgs)
      pad = cols - len(imgs)
      if pad:
        imgs = np.concatenate([imgs, np.zeros((pad,) + imgs.shape[1:],
                                              np.uint8)])
      rows.append(np.concatenate(list(imgs), axis=1))
  grid = np.concatenate(rows, axis=0)
  if scale > 1:
    grid = grid.repeat(scale, 0).repeat(scale, 1)
  fileio.write_bytes(path, png_bytes(grid))


def comparison_bars(names: list[str], columns: list[tuple[str, list, list]],
                    path: str) -> None:
  """One horizontal bar chart per metric: (title, means, error bar half
  widths) for each method name."""
  plt = _pyplot()
  if not names:
    return
  fig, axes = plt.subplots(1, len(columns),
                           figsize=(4 * len(columns), 0.5 * len(names) + 1.8),
                           squeeze=False)
  for ax, (title, means, errs) in zip(axes[0], columns):
    ax.barh(names, means, xerr=errs, color="#4c72b0")
    ax.set_title(title)
    ax.invert_yaxis()
  for ax in axes[0][1:]:
    ax.set_yticks([])
  _save(fig, path)


def forest(names: list[str], means: list[float], lows: list, highs: list,
           xlabel: str, path: str) -> None:
  """Paired differences with their intervals (a point where an interval is
  undefined), a vertical line at 0."""
  plt = _pyplot()
  if not names:
    return
  fig, ax = plt.subplots(figsize=(7, 0.4 * len(names) + 1.5))
  y = np.arange(len(names))
  for i, (m, lo, hi) in enumerate(zip(means, lows, highs)):
    if lo is not None:
      ax.plot([lo, hi], [i, i], color="#4c72b0", lw=2)
    ax.plot([m], [i], "o", color="#c44e52" if (lo is not None and (
        lo > 0 or hi < 0)) else "#4c72b0")
  ax.axvline(0.0, color="k", lw=1, ls="--")
  ax.set_yticks(y, names)
  ax.invert_yaxis()
  ax.set_xlabel(xlabel)
  _save(fig, path)
