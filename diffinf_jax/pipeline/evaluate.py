"""`diffinf evaluate`: accuracy, macro AUROC and kappa on the clean test split."""

from __future__ import annotations

import os

from diffinf_jax import fileio
from diffinf_jax import metrics as metrics_lib
from diffinf_jax import plots
from diffinf_jax import workdir as wd
from diffinf_jax.models import classifier
from diffinf_jax.pipeline import data as data_stage

NAME = "evaluate"
HELP = ("evaluate the trained classifier on the clean test split (accuracy, "
        "AUROC, kappa)")
DESCRIPTION = """Evaluate the final checkpoint in W/train on the clean test split.

Writes W/eval/metrics.json (accuracy, auroc_macro_ovr, kappa_linear, kappa,
per_class_accuracy, confusion_matrix, num_test), metrics.md, confusion.png and
predictions.npz (index, probs, label). AUROC is one-vs-rest from softmax
probabilities, macro-averaged over classes 0..K-1; kappa_linear is Cohen's
kappa with linear weights (ordinal age), kappa the unweighted one."""
DEPENDS = ("data", "train")
SECTIONS = ("evaluation",)


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


def evaluate_run(config, dataset, run_dir: str, out_dir: str) -> dict:
  """Evaluates the final checkpoint of a classifier run directory on the
  clean `evaluation.split` and writes OUT_DIR (see DESCRIPTION)."""
  split = config.evaluation.split
  arrays = dataset.arrays(split, raw=True)
  if len(arrays["label"]) == 0:
    raise ValueError(f"the {split} split is empty")
  model, variables = wd.load_classifier(config, run_dir,
                                        arrays["image"].shape[1:])
  probs = classifier.predict_dataset(model.apply, variables, arrays["image"],
                                     int(config.evaluation.batch_size))
  labels = arrays["clean_label"]  # evaluation is always against clean labels
  m = metrics_lib.classification_report(probs, labels, dataset.num_classes)
  m["split"] = split
  fileio.save_npz(os.path.join(out_dir, "predictions.npz"),
                  index=arrays["index"], probs=probs.astype("float32"),
                  label=labels)
  fileio.write_json(os.path.join(out_dir, "metrics.json"), m)
  fileio.write_text(os.path.join(out_dir, "metrics.md"),
                    metrics_markdown(m, dataset.class_names))
  plots.confusion(m["confusion_matrix"], dataset.class_names,
                  os.path.join(out_dir, "confusion.png"))
  return m


def run(config, workdir: str) -> dict:
  dataset = data_stage.load(config, workdir)
  m = evaluate_run(config, dataset, wd.train_dir(workdir),
                   wd.stage_dir(workdir, NAME))
  return {k: m[k] for k in ("accuracy", "auroc_macro_ovr", "kappa_linear",
                            "kappa", "num_test", "split")}


def summary_line(s: dict) -> str:
  return (f"evaluate: accuracy {s['accuracy']:.4f}, macro AUROC "
          f"{s['auroc_macro_ovr']:.4f}, kappa (linear) {s['kappa_linear']:.4f} "
          f"on {s['num_test']} {s['split']} images")
