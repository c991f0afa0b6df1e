"""`diffinf compare`: noisy-label baselines on the same split and seeds.

Every method of `config.compare.methods` is trained for every seed of
`config.compare.seeds` on the SAME noisy split (the data and noise seeds are
fixed; `seed` only changes initialisation and data order) and evaluated on
the clean test split. Outputs in W/compare/:

  <method>/seed<k>/train/...   the method's run (checkpoints, history)
  <method>/seed<k>/eval/...    metrics.json, predictions.npz, ...
  table.csv   method, seeds, accuracy_mean, accuracy_std, auroc_mean,
              auroc_std, kappa_linear_mean, kappa_linear_std
  table.md, table.png, detection.csv

A finished (method, seed) whose fingerprint matches is reused, not retrained.
Standard deviations are over seeds (ddof 0: 0 with one seed).
"""

from __future__ import annotations

import csv
import io
import logging
import os
import shutil
import time

import ml_collections
import numpy as np

from diffinf_jax import configuration
from diffinf_jax import fileio

TABLE_COLUMNS = ("method", "seeds", "accuracy_mean", "accuracy_std",
                 "auroc_mean", "auroc_std", "kappa_linear_mean",
                 "kappa_linear_std")
METHOD_LABELS = {"ce": "Original noisy (CE)", "small_loss": "Small loss",
                 "coteaching": "Co-teaching", "elr": "ELR", "elr_plus": "ELR+",
                 "proselflc": "ProSelfLC", "promix": "ProMix",
                 "divide_mix": "DivideMix",
                 "influence_removal": "Self-influence removal",
                 "diffinf": "DiffInf"}


def method_config(config, seed: int) -> ml_collections.ConfigDict:
  """The run config of one (method, seed): seed and epoch count replaced."""
  cfg = ml_collections.ConfigDict(config.to_dict())
  cfg.seed = int(seed)
  if int(config.compare.num_epochs) > 0:
    cfg.train.num_epochs = int(config.compare.num_epochs)
    cfg.train.save_every_epochs = min(int(cfg.train.save_every_epochs),
                                      cfg.train.num_epochs)
  cfg.lock()
  return cfg


def _input_fingerprint(workdir: str, method: str) -> str:
  """Hash of the files a data-changing method reads (scores, corrections)."""
  rel = {"influence_removal": "influence/scores.npy",
         "diffinf": "correct/corrected.npz"}.get(method)
  if rel is None:
    return ""
  path = os.path.join(workdir, rel)
  if not os.path.isfile(path):
    return "missing"
  from diffinf_jax.convert import common
  return common.sha256_file(path)[:16]


def run_one(config, workdir: str, dataset, method: str, seed: int) -> dict:
  """Trains and evaluates one (method, seed), reusing a matching finished run."""
  from diffinf_jax import evaluation
  from diffinf_jax.training import methods
  cfg = method_config(config, seed)
  sub = os.path.join("compare", method, f"seed{seed}")
  out = os.path.join(workdir, sub)
  fp = {"config": configuration.config_hash(
      cfg, ("seed", "data", "noise", "model", "train", "influence")),
        "method": method, "inputs": _input_fingerprint(workdir, method)}
  fp_path = os.path.join(out, "fingerprint.json")
  metrics_path = os.path.join(out, "eval", "metrics.json")
  if os.path.isfile(fp_path) and os.path.isfile(metrics_path):
    if fileio.read_json(fp_path) == fp:
      return fileio.read_json(metrics_path)
  if os.path.isdir(out):
    shutil.rmtree(out)  # a stale or half-finished run of another config
  t0 = time.time()
  methods.train_method(method, cfg, workdir, dataset,
                       out_subdir=os.path.join(sub, "train"))
  m = evaluation.evaluate(cfg, workdir, dataset,
                          train_subdir=os.path.join(sub, "train"),
                          out_subdir=os.path.join(sub, "eval"))
  fileio.write_json(fp_path, fp)
  logging.info("compare: %s seed %d: accuracy %.4f (%.0f s)", method, seed,
               m["accuracy"], time.time() - t0)
  return m


def table_rows(results: dict[str, list[dict]]) -> list[dict]:
  rows = []
  for method, runs in results.items():
    if not runs:
      continue
    row = {"method": method, "seeds": len(runs)}
    for col, key in (("accuracy", "accuracy"), ("auroc", "auroc_macro_ovr"),
                     ("kappa_linear", "kappa_linear")):
      vals = np.array([r[key] for r in runs], np.float64)
      row[f"{col}_mean"] = float(np.mean(vals))
      row[f"{col}_std"] = float(np.std(vals))
    rows.append(row)
  return rows


def table_csv(rows: list[dict]) -> str:
  buf = io.StringIO()
  w = csv.DictWriter(buf, fieldnames=TABLE_COLUMNS, lineterminator="\n")
  w.writeheader()
  for r in rows:
    w.writerow({k: (f"{r[k]:.6f}" if isinstance(r[k], float) else r[k])
                for k in TABLE_COLUMNS})
  return buf.getvalue()


def table_markdown(rows: list[dict], skipped: dict[str, str]) -> str:
  lines = ["| method | seeds | accuracy | macro AUROC | kappa (linear) |",
           "| --- | --- | --- | --- | --- |"]
  for r in rows:
    cell = lambda c: f"{r[c + '_mean']:.4f} ± {r[c + '_std']:.4f}"
    lines.append(f"| {METHOD_LABELS.get(r['method'], r['method'])} | "
                 f"{r['seeds']} | {cell('accuracy')} | {cell('auroc')} | "
                 f"{cell('kappa_linear')} |")
  for method, why in skipped.items():
    lines.append(f"| {METHOD_LABELS.get(method, method)} | 0 | not run: "
                 f"{why} | | |")
  return "\n".join(lines) + "\n"


def plot_table(rows: list[dict], path: str) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  if not rows:
    return
  names = [METHOD_LABELS.get(r["method"], r["method"]) for r in rows]
  cols = (("accuracy", "accuracy"), ("auroc", "macro AUROC"),
          ("kappa_linear", "kappa (linear)"))
  fig, axes = plt.subplots(1, 3, figsize=(12, 0.5 * len(rows) + 1.8))
  for ax, (c, title) in zip(axes, cols):
    ax.barh(names, [r[f"{c}_mean"] for r in rows],
            xerr=[r[f"{c}_std"] for r in rows], color="#4c72b0")
    ax.set_title(title)
    ax.invert_yaxis()
  for ax in axes[1:]:
    ax.set_yticks([])
  fig.tight_layout()
  with fileio.atomic_path(path) as tmp:
    fig.savefig(tmp, format="png", dpi=90)
  plt.close(fig)


def run(config, workdir: str) -> dict:
  """Runs the comparison; returns {'rows': [...], 'skipped': {...}}."""
  from diffinf_jax import data
  from diffinf_jax import detection_compare
  dataset = data.get_dataset(config, workdir)
  results, skipped = {}, {}
  for method in config.compare.methods:
    try:
      results[method] = [run_one(config, workdir, dataset, method, int(s))
                         for s in config.compare.seeds]
    except NotImplementedError as e:
      skipped[method] = str(e)
      logging.warning("compare: skipping %s (%s)", method, e)
    except FileNotFoundError as e:
      skipped[method] = str(e)
      logging.warning("compare: skipping %s (%s)", method, e)
  rows = table_rows(results)
  out = os.path.join(workdir, "compare")
  fileio.write_text(os.path.join(out, "table.csv"), table_csv(rows))
  fileio.write_text(os.path.join(out, "table.md"),
                    table_markdown(rows, skipped))
  plot_table(rows, os.path.join(out, "table.png"))
  det = detection_compare.run(config, workdir, dataset)
  fileio.write_text(os.path.join(out, "detection.csv"),
                    detection_compare.to_csv(det))
  return {"rows": rows, "skipped": skipped, "detection": det}
