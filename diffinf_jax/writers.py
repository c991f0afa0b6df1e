"""Metric writers: the only clu.metric_writers import.

`MetricWriter` sends scalars to TensorBoard event files and the log (clu's
default writer) and appends them as JSON lines to `metrics.jsonl`, which tests
and the report read.
"""

from __future__ import annotations

import json
import os

import jax


class MetricWriter:
  """TensorBoard + logging (clu) + a JSONL file in `logdir`."""

  def __init__(self, logdir: str):
    from clu import metric_writers
    os.makedirs(logdir, exist_ok=True)
    self._clu = metric_writers.create_default_writer(
        logdir, just_logging=jax.process_index() != 0)
    self._jsonl = os.path.join(logdir, "metrics.jsonl")

  def write_scalars(self, step: int, scalars: dict) -> None:
    scalars = {k: float(v) for k, v in scalars.items()}
    self._clu.write_scalars(step, scalars)
    if jax.process_index() == 0:
      with open(self._jsonl, "a") as f:
        f.write(json.dumps({"step": int(step), **scalars}) + "\n")

  def write_hparams(self, hparams: dict) -> None:
    self._clu.write_hparams(hparams)

  def close(self) -> None:
    self._clu.flush()
    self._clu.close()


def plot_curves(history: list[dict], path: str) -> None:
  """Learning curves (loss and accuracy per epoch, train and val) as PNG."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from diffinf_jax import fileio
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
  fig.tight_layout()
  with fileio.atomic_path(path) as tmp:
    fig.savefig(tmp, format="png", dpi=90)
  plt.close(fig)
