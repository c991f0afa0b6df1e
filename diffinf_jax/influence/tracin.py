"""TracIn self-influence over training checkpoints (Pruthi et al. 2020, eq. 5).

    I(i) = sum_t lr_t * || grad_theta loss(x_i, y_i; theta_t) ||^2

over all parameters, BatchNorm in inference mode (see `per_example.py`). The
loop is checkpoint-outer: each checkpoint is loaded once and every sample is
streamed through it, while a background thread already loads the next one.
Batches are split over all devices (one-axis 'data' mesh, replicated
parameters). The squared norms of each (checkpoint, chunk of samples) are
saved atomically as soon as they exist, so an interrupted run resumes with
the missing chunks only; the learning rates are applied at the end, so
changing them never requires recomputing norms.

Pure engine: checkpoints and arrays in, scores out. Finished chunks go to
stores the caller provides (files in W/influence/partial for the influence
stage, `diffinf_jax.pipeline.influence`, which also writes the outputs).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import logging
import math
import time
from typing import Any, Callable, Sequence

import numpy as np

from diffinf_jax import chunks

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Checkpoint:
  """One checkpoint to score with: its step, lr and a loader of variables."""
  step: int
  learning_rate: float
  load: Callable[[], Any]


def validate_learning_rates(steps: Sequence[int],
                            from_metadata: Sequence[float | None],
                            explicit: Sequence[float] = ()) -> list[float]:
  """lr_t per checkpoint: the explicit list if given, else the metadata.

  Raises:
    ValueError: explicit list of the wrong length or with a value that is not
      finite and > 0; a checkpoint without a learning rate and no list.
  """
  if explicit:
    lrs = [float(v) for v in explicit]
    if len(lrs) != len(steps):
      raise ValueError(
          f"influence.learning_rates has {len(lrs)} values for {len(steps)} "
          f"checkpoints (steps {list(steps)}); give one per checkpoint")
  else:
    missing = [s for s, v in zip(steps, from_metadata) if v is None]
    if missing:
      raise ValueError(
          f"checkpoints at steps {missing} store no learning rate; set "
          "influence.learning_rates=(lr_1, ..., lr_K) explicitly (TracIn never "
          "defaults it to 1)")
    lrs = [float(v) for v in from_metadata]
  bad = [(s, v) for s, v in zip(steps, lrs) if not (math.isfinite(v) and v > 0)]
  if bad:
    raise ValueError(f"learning rates must be finite and > 0; got {bad} "
                     "(step, lr)")
  return lrs


def fingerprint(**parts: Any) -> str:
  """A short hash of everything a chunk's numbers depend on."""
  h = hashlib.sha256()
  for key in sorted(parts):
    value = parts[key]
    if isinstance(value, np.ndarray):
      h.update(key.encode() + value.tobytes() + str(value.dtype).encode())
    else:
      h.update(key.encode() + json.dumps(value, sort_keys=True,
                                         default=str).encode())
  return h.hexdigest()[:24]


class MemoryStore:
  """Chunk results kept in memory (no resume): the `stores` default."""

  def __init__(self):
    self._chunks = {}

  def load(self, k: int):
    return self._chunks.get(k)

  def save(self, k: int, arrays: dict) -> None:
    self._chunks[k] = arrays


def host_batches(arrays: dict[str, np.ndarray], rows: slice,
                 batch_size: int):
  """Fixed-shape batches of `rows`: the last is padded with copies of its
  first row and `mask` False there (copies, not zeros, stay valid model
  input, e.g. token ids; the mask gives those rows exactly zero norms).

  Yields:
    (batch dict, number of real rows).
  """
  n = rows.stop - rows.start
  for s in range(0, n, batch_size):
    take = np.arange(s, s + batch_size)
    real = take < n
    take = rows.start + np.where(real, take, s)
    batch = {k: v[take] for k, v in arrays.items()}
    batch["mask"] = real
    yield batch, int(real.sum())


def chunk_norms(sq_norm_fn: Callable, variables: Any,
                arrays: dict[str, np.ndarray], rows: slice, batch_size: int,
                mesh=None) -> dict[str, np.ndarray]:
  """{layer: [len(rows)] float64} squared norms of `rows` at `variables`.

  Args:
    sq_norm_fn: jitted fn(variables, batch) -> [B] or {layer: [B]}.
    variables: model variables (already placed on the mesh if any).
    arrays: host arrays of every column the model and loss read.
    rows: the rows to score.
    batch_size: fixed batch size (a multiple of the device count).
    mesh: a ('data',) mesh to split batches over, or None.
  """
  import jax
  from diffinf_jax import sharding
  out: dict[str, list] = {}
  for batch, n in host_batches(arrays, rows, batch_size):
    if mesh is not None:
      batch = jax.device_put(batch, sharding.batch_sharding(mesh))
    per = jax.device_get(sq_norm_fn(variables, batch))
    per = per if isinstance(per, dict) else {TOTAL: per}
    for name, v in per.items():
      out.setdefault(name, []).append(np.asarray(v, np.float64)[:n])
  return {k: np.concatenate(v) for k, v in out.items()}


TOTAL = "_total"  # the key of a norm function that returns the total only


def self_influence(sq_norm_fn: Callable, checkpoints: Sequence[Checkpoint],
                   arrays: dict[str, np.ndarray], *, batch_size: int,
                   chunk_size: int | None = None,
                   stores: Sequence[Any] | None = None, mesh=None,
                   place: Callable[[Any], Any] | None = None,
                   check: Callable[[Any, int], None] | None = None,
                   desc: str = "influence") -> dict[str, Any]:
  """Checkpoint-outer TracIn self-influence over resumable chunks.

  Each checkpoint is loaded once (the next one in the background while this
  one computes) and every row streams through it.

  Args:
    sq_norm_fn: jitted fn(variables, batch) -> [B] squared gradient norms,
      or {layer: [B]} (per-layer norms).
    checkpoints: in training order, each with its lr and loader.
    arrays: host arrays of the samples: every column the model and the loss
      read, plus `index` (dataset ids, used in messages; never fed).
    batch_size: per step over all devices (rounded up to the device count).
    chunk_size: samples per saved partial result (default: all).
    stores: one chunk store per checkpoint (`chunks.ChunkStore` or anything
      with load(k) -> dict | None and save(k, arrays)), tagged with the
      fingerprint of the work; finished chunks are loaded, not recomputed.
      Default: in memory.
    mesh: ('data',) mesh for data parallelism, or None (default device).
    place: puts loaded variables on the devices (default: replicate on mesh).
    check: fn(variables, step) raising on variables that do not fit.
    desc: the progress label.

  Returns:
    dict: scores [N] float64, per_checkpoint [K, N] float64 (lr-weighted),
    sq_norms [K, N] float64, per_layer {layer: [K, N]} float64 squared norms
    (lr not applied; None for a total-only norm function), timings (s).

  Raises:
    ValueError: a non-finite norm (names the checkpoint and dataset indices).
  """
  from diffinf_jax import progress
  from diffinf_jax import sharding
  if mesh is not None:
    batch_size = sharding.global_batch_size(batch_size, mesh)
    place = place or (lambda v: sharding.replicate(v, mesh))
  place = place or (lambda v: v)
  index = arrays["index"]
  inputs = {k: v for k, v in arrays.items() if k != "index"}
  n = len(index)
  spans = chunks.split_chunks(n, chunk_size or n)
  stores = stores or [MemoryStore() for _ in checkpoints]
  if len(stores) != len(checkpoints):
    raise ValueError(f"{len(stores)} chunk stores for {len(checkpoints)} "
                     "checkpoints")
  missing = {i: [k for k in range(len(spans)) if st.load(k) is None]
             for i, st in enumerate(stores)}
  todo = [i for i in missing if missing[i]]
  total = len(stores) * len(spans)
  work = progress.track(
      ((i, k) for i in todo for k in missing[i]), total=total,
      done=total - sum(len(missing[i]) for i in todo), desc=desc,
      unit="chunk")
  timings = {"load_wait_s": 0.0, "compute_s": 0.0}
  with concurrent.futures.ThreadPoolExecutor(1) as pool:
    pending = pool.submit(checkpoints[todo[0]].load) if todo else None
    current, variables = None, None
    for i, k in work:
      if i != current:
        t0 = time.perf_counter()
        variables = pending.result()
        if check is not None:
          check(variables, checkpoints[i].step)
        variables = place(variables)
        timings["load_wait_s"] += time.perf_counter() - t0
        # Prefetch: the next checkpoint loads while this one computes.
        j = todo.index(i)
        pending = (pool.submit(checkpoints[todo[j + 1]].load)
                   if j + 1 < len(todo) else None)
        current = i
      t0 = time.perf_counter()
      rows = spans[k]
      per = chunk_norms(sq_norm_fn, variables, inputs, rows, batch_size, mesh)
      sq = sum(per.values())
      bad = ~np.isfinite(sq)
      if bad.any():
        raise ValueError(
            f"non-finite gradient norms at checkpoint step "
            f"{checkpoints[i].step} for dataset indices "
            f"{index[rows][bad][:10].tolist()}: the loss is NaN/inf there "
            "(diverged checkpoint?); nothing was written")
      stores[i].save(k, {"index": index[rows],
                         **{f"sq_norm/{name}": v for name, v in per.items()}})
      timings["compute_s"] += time.perf_counter() - t0
    del variables
  parts = [[st.load(k) for k in range(len(spans))] for st in stores]
  names = [key[len("sq_norm/"):] for key in parts[0][0]
           if key.startswith("sq_norm/")]
  layers = {name: np.stack([np.concatenate([c[f"sq_norm/{name}"]
                                            for c in ckpt])
                            for ckpt in parts]) for name in names}
  sq = sum(layers.values())
  lrs = np.asarray([c.learning_rate for c in checkpoints], np.float64)
  per = lrs[:, None] * sq
  return {"scores": per.sum(0), "per_checkpoint": per, "sq_norms": sq,
          "per_layer": None if names == [TOTAL] else layers,
          "timings": timings}
