"""Label-error detection compared against the known flip mask.

Detectors (each flags the top-tau fraction of the training split):
  self_influence      TracIn self-influence (W/influence/scores.npy)
  small_loss          cross-entropy of the assigned label under the final
                      noisy classifier (W/train), the large-loss end
  confident_learning  cleanlab's find_label_issues on the same classifier's
                      probabilities (only when cleanlab is installed; an
                      optional external reference). It flags its own count.
"""

from __future__ import annotations

import csv
import io
import os

import numpy as np

from diffinf_jax import metrics

COLUMNS = ("detector", "tau", "num_flagged", "precision", "recall", "auroc")


def _row(name, flagged, score, flipped, tau):
  flipped = flipped.astype(bool)
  tp = int((flagged & flipped).sum())
  return {"detector": name, "tau": tau, "num_flagged": int(flagged.sum()),
          "precision": tp / max(int(flagged.sum()), 1),
          "recall": tp / max(int(flipped.sum()), 1),
          "auroc": metrics.binary_auroc(flipped, score)}


def top_fraction(score: np.ndarray, tau: float) -> np.ndarray:
  """ceil(tau * N) highest scores: the same rule as the influence stage."""
  from diffinf_jax.influence import detection
  return detection.flag_top(score, tau)


def run(config, workdir: str, dataset) -> list[dict]:
  from diffinf_jax import evaluation
  from diffinf_jax import sharding
  from diffinf_jax.training import loop
  tau = float(config.influence.tau)
  train = dataset.arrays("train", raw=True)
  flipped = train["flipped"]
  rows = []
  inf = os.path.join(workdir, "influence")
  if os.path.isfile(os.path.join(inf, "scores.npy")):
    scores = np.load(os.path.join(inf, "scores.npy"))
    index = np.load(os.path.join(inf, "index.npy"))
    if np.array_equal(index, train["index"]):
      rows.append(_row("self_influence", top_fraction(scores, tau), scores,
                       flipped, tau))
  ckpt_dir = os.path.join(workdir, "train", "checkpoints")
  if os.path.isdir(ckpt_dir):
    model, variables = evaluation.load_classifier(config, ckpt_dir,
                                                  train["image"].shape[1:])
    mesh = sharding.data_mesh()
    probs = loop.predict_dataset(model.apply, variables, train["image"],
                                 -(-256 // mesh.devices.size) *
                                 mesh.devices.size, mesh)
    p_label = probs[np.arange(len(probs)), train["label"]]
    loss = -np.log(np.clip(p_label, 1e-12, None))
    rows.append(_row("small_loss", top_fraction(loss, tau), loss, flipped,
                     tau))
    try:
      from cleanlab.filter import find_label_issues
    except ImportError:
      find_label_issues = None
    if find_label_issues is not None:
      issues = find_label_issues(train["label"], probs)
      rows.append(_row("confident_learning", np.asarray(issues, bool),
                       1.0 - p_label, flipped, None))
  return rows


def to_csv(rows: list[dict]) -> str:
  buf = io.StringIO()
  w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
  w.writeheader()
  for r in rows:
    w.writerow({k: (f"{r[k]:.6f}" if isinstance(r[k], float) else r[k])
                for k in COLUMNS})
  return buf.getvalue()
