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

  def __init__(self, logdir: str, resume_step: int = 0):
    """`resume_step`: a resumed run drops the JSONL lines written after its
    checkpoint, so the file matches an uninterrupted run."""
    from clu import metric_writers
    os.makedirs(logdir, exist_ok=True)
    self._clu = metric_writers.create_default_writer(
        logdir, just_logging=jax.process_index() != 0)
    self._jsonl = os.path.join(logdir, "metrics.jsonl")
    if os.path.isfile(self._jsonl) and jax.process_index() == 0:
      with open(self._jsonl) as f:
        keep = [ln for ln in f if ln.strip() and
                json.loads(ln)["step"] <= resume_step]
      from diffinf_jax import fileio
      fileio.write_text(self._jsonl, "".join(keep))

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
