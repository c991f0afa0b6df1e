"""Evaluation of a trained classifier on the clean test split.

Writes W/<out>/metrics.json (accuracy, auroc_macro_ovr, kappa_linear, kappa,
per_class_accuracy, confusion_matrix, num_test, ...), metrics.md,
confusion.png and predictions.npz (index, probs, label) so anyone can
recompute the metrics.
"""

from __future__ import annotations

import os

import jax
import numpy as np

from diffinf_jax import checkpointing
from diffinf_jax import fileio
from diffinf_jax import metrics as metrics_lib
from diffinf_jax import models
from diffinf_jax import sharding
from diffinf_jax.training import loop


def load_classifier(config, ckpt_dir: str, image_shape, step: int | None = None):
  """(model, variables) of a checkpoint step (default: the latest)."""
  steps = checkpointing.list_checkpoints(ckpt_dir)
  if not steps:
    raise FileNotFoundError(f"{ckpt_dir}: no checkpoints; run `diffinf "
                            "train` first")
  step = int(steps[-1]["step"]) if step is None else step
  model = models.get_model(config.model)
  abstract = jax.eval_shape(
      lambda x: model.init(jax.random.key(0), x, train=False),
      jax.ShapeDtypeStruct((1,) + tuple(image_shape), np.float32))
  return model, checkpointing.restore_variables(ckpt_dir, step, abstract)


def plot_confusion(confusion, class_names, path: str) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  cm = np.asarray(confusion)
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
  fig.tight_layout()
  with fileio.atomic_path(path) as tmp:
    fig.savefig(tmp, format="png", dpi=90)
  plt.close(fig)


CLASS_NAMES = {"age": ("young", "middle", "old"),
               "expression": ("happy", "neutral", "surprised", "sad")}


def metrics_markdown(m: dict, class_names) -> str:
  lines = ["| metric | value |", "| --- | --- |"]
  for k in ("accuracy", "auroc_macro_ovr", "kappa_linear", "kappa", "num_test"):
    v = m[k]
    lines.append(f"| {k} | {v:.4f} |" if isinstance(v, float) else
                 f"| {k} | {v} |")
  lines += ["", "| class | accuracy | AUROC (OvR) |", "| --- | --- | --- |"]
  for name, acc, auc in zip(class_names, m["per_class_accuracy"],
                            m["auroc_per_class"]):
    auc_s = "n/a" if auc is None else f"{auc:.4f}"
    lines.append(f"| {name} | {acc:.4f} | {auc_s} |")
  return "\n".join(lines) + "\n"


def evaluate(config, workdir: str, dataset, *, train_subdir: str = "train",
             out_subdir: str = "eval", split: str | None = None) -> dict:
  """Evaluates the final checkpoint of W/<train_subdir> on a clean split."""
  split = split or config.evaluation.split
  arrays = dataset.arrays(split, raw=True)
  if len(arrays["label"]) == 0:
    raise ValueError(f"the {split} split is empty")
  ckpt_dir = os.path.join(workdir, train_subdir, "checkpoints")
  model, variables = load_classifier(config, ckpt_dir,
                                     arrays["image"].shape[1:])
  mesh = sharding.data_mesh()
  batch = -(-int(config.evaluation.batch_size) // mesh.devices.size) * (
      mesh.devices.size)
  probs = loop.predict_dataset(model.apply, variables, arrays["image"], batch,
                               mesh)
  labels = arrays["clean_label"]  # evaluation is always against clean labels
  m = metrics_lib.classification_report(probs, labels, dataset.num_classes)
  m["split"] = split
  out = os.path.join(workdir, out_subdir)
  names = CLASS_NAMES.get(dataset.task, tuple(
      str(k) for k in range(dataset.num_classes)))
  fileio.save_npz(os.path.join(out, "predictions.npz"),
                  index=arrays["index"], probs=probs.astype(np.float32),
                  label=labels)
  fileio.write_json(os.path.join(out, "metrics.json"), m)
  fileio.write_text(os.path.join(out, "metrics.md"), metrics_markdown(m, names))
  plot_confusion(m["confusion_matrix"], names,
                 os.path.join(out, "confusion.png"))
  return m
