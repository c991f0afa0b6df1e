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

Outputs of `run(config, workdir)` in WORKDIR/influence/:
  scores.npy          float64 [N_train], the score of train sample k (order
                      of `index.npy`, i.e. the train split's dataset indices)
  index.npy           int32 [N_train] dataset index of each score
  per_checkpoint.npy  float64 [K, N_train], lr_t * ||g||^2 (sums to scores)
  scores.csv          index, score, assigned label, clean label, flipped
  meta.json           steps, learning rates, method, timings
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import logging
import math
import os
import time
from typing import Any, Callable, Sequence

import numpy as np

from diffinf_jax import chunks
from diffinf_jax import fileio

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


def _device_batches(arrays: dict[str, np.ndarray], rows: slice,
                    batch_size: int):
  """Fixed-shape host batches of `rows` (the last one padded, mask False)."""
  from diffinf_jax import sharding
  n = rows.stop - rows.start
  for s in range(0, n, batch_size):
    sel = slice(rows.start + s, rows.start + min(s + batch_size, n))
    batch = {k: v[sel] for k, v in arrays.items()}
    batch["mask"] = np.ones(sel.stop - sel.start, bool)
    yield sharding.pad_batch(batch, batch_size), sel.stop - sel.start


def sq_norms_over(sq_norm_fn: Callable, variables: Any,
                  arrays: dict[str, np.ndarray], rows: slice, batch_size: int,
                  mesh=None) -> np.ndarray:
  """[len(rows)] float64 squared norms of rows of `arrays` at `variables`.

  Args:
    sq_norm_fn: jitted fn(variables, batch) -> [B].
    variables: model variables (already placed on the mesh if any).
    arrays: host arrays with `image`, `label` (the model inputs).
    rows: the rows to score.
    batch_size: fixed batch size (a multiple of the device count).
    mesh: a ('data',) mesh to split batches over, or None.
  """
  import jax
  from diffinf_jax import sharding
  out = []
  for batch, n in _device_batches(arrays, rows, batch_size):
    if mesh is not None:
      batch = {k: jax.device_put(v, sharding.batch_sharding(mesh))
               for k, v in batch.items()}
    out.append(np.asarray(sq_norm_fn(variables, batch), np.float64)[:n])
  return np.concatenate(out) if out else np.zeros(0)


def self_influence(sq_norm_fn: Callable, checkpoints: Sequence[Checkpoint],
                   arrays: dict[str, np.ndarray], *, batch_size: int,
                   chunk_size: int, store_dir: str, work_id: str, mesh=None,
                   place: Callable[[Any], Any] | None = None
                   ) -> dict[str, Any]:
  """Checkpoint-outer TracIn self-influence with resumable chunk files.

  Args:
    sq_norm_fn: jitted fn(variables, batch) -> [B] squared gradient norms.
    checkpoints: in training order, each with its lr and loader.
    arrays: host arrays of the samples to score (`image`, `label`, `index`).
    batch_size: per step over all devices (rounded up to the device count).
    chunk_size: samples per saved partial result.
    store_dir: where chunk files live (`ckpt_{step}/chunk_*.npz`).
    work_id: fingerprint of model/method/data; chunks of other work are
      ignored.
    mesh: ('data',) mesh for data parallelism, or None (default device).
    place: puts loaded variables on the devices (default: replicate on mesh).

  Returns:
    dict: scores [N] float64, per_checkpoint [K, N] float64 (lr-weighted),
    sq_norms [K, N] float64, timings (seconds).

  Raises:
    ValueError: a non-finite norm (names the checkpoint and dataset indices).
  """
  from diffinf_jax import sharding
  if mesh is not None:
    ndev = mesh.devices.size
    batch_size = -(-batch_size // ndev) * ndev
    place = place or (lambda v: sharding.replicate(v, mesh))
  place = place or (lambda v: v)
  n = len(arrays["label"])
  spans = chunks.split_chunks(n, chunk_size)
  stores = [chunks.ChunkStore(os.path.join(store_dir, f"ckpt_{c.step}"),
                              fingerprint(work=work_id, step=c.step))
            for c in checkpoints]
  todo = [i for i, st in enumerate(stores)
          if any(st.load(k) is None for k in range(len(spans)))]
  inputs = {k: arrays[k] for k in ("image", "label")}
  timings = {"load_wait_s": 0.0, "compute_s": 0.0}
  with concurrent.futures.ThreadPoolExecutor(1) as pool:
    pending = pool.submit(checkpoints[todo[0]].load) if todo else None
    for j, i in enumerate(todo):
      t0 = time.perf_counter()
      variables = place(pending.result())
      timings["load_wait_s"] += time.perf_counter() - t0
      # Prefetch: the next checkpoint loads while this one computes.
      pending = (pool.submit(checkpoints[todo[j + 1]].load)
                 if j + 1 < len(todo) else None)
      t0 = time.perf_counter()
      for k, rows in enumerate(spans):
        if stores[i].load(k) is not None:
          continue
        sq = sq_norms_over(sq_norm_fn, variables, inputs, rows, batch_size,
                           mesh)
        bad = ~np.isfinite(sq)
        if bad.any():
          idx = arrays["index"][rows][bad][:10].tolist()
          raise ValueError(
              f"non-finite gradient norms at checkpoint step "
              f"{checkpoints[i].step} for dataset indices {idx}: the loss is "
              "NaN/inf there (diverged checkpoint?); nothing was written")
        stores[i].save(k, {"sq_norm": sq, "index": arrays["index"][rows]})
        log.info("influence: step %d chunk %d/%d done", checkpoints[i].step,
                 k + 1, len(spans))
      timings["compute_s"] += time.perf_counter() - t0
      del variables
  sq = np.stack([np.concatenate([st.load(k)["sq_norm"]
                                 for k in range(len(spans))]) for st in stores])
  lrs = np.asarray([c.learning_rate for c in checkpoints], np.float64)
  per = lrs[:, None] * sq
  return {"scores": per.sum(0), "per_checkpoint": per, "sq_norms": sq,
          "timings": timings}


def scores_csv(index, scores, label, clean_label) -> str:
  """CSV text: index, score, assigned label, clean label (-1 unknown), flipped."""
  lines = ["index,score,label,clean_label,flipped"]
  for i, s, y, c in zip(index, scores, label, clean_label):
    flipped = int(c >= 0 and c != y)
    lines.append(f"{int(i)},{float(s)!r},{int(y)},{int(c)},{flipped}")
  return "\n".join(lines) + "\n"


def write_outputs(out_dir: str, result: dict, arrays: dict, meta: dict) -> None:
  """Writes the score files, each atomically (never half a file)."""
  fileio.save_npy(os.path.join(out_dir, "scores.npy"),
                  result["scores"].astype(np.float64))
  fileio.save_npy(os.path.join(out_dir, "index.npy"),
                  arrays["index"].astype(np.int32))
  fileio.save_npy(os.path.join(out_dir, "per_checkpoint.npy"),
                  result["per_checkpoint"].astype(np.float64))
  fileio.write_text(os.path.join(out_dir, "scores.csv"), scores_csv(
      arrays["index"], result["scores"], arrays["label"],
      arrays.get("clean_label", np.full(len(arrays["label"]), -1))))
  fileio.write_json(os.path.join(out_dir, "meta.json"),
                    {**meta, "timings": result["timings"]})


def check_structure(restored: Any, abstract: Any, where: str) -> None:
  """Raises if a restored tree differs from the model's in keys or shapes."""
  import jax
  got = {jax.tree_util.keystr(k): np.shape(v)
         for k, v in jax.tree_util.tree_flatten_with_path(restored)[0]}
  want = {jax.tree_util.keystr(k): tuple(v.shape)
          for k, v in jax.tree_util.tree_flatten_with_path(abstract)[0]}
  if got != want:
    diff = sorted(set(got.items()) ^ set(want.items()))[:6]
    raise ValueError(
        f"{where}: checkpoint does not match the model of this config "
        f"(first differences: {diff}); was it trained with another "
        "model config?")


def run(config, workdir: str) -> dict:
  """`diffinf influence`: scores every training sample, then detection.

  Reads WORKDIR/train/checkpoints (steps with learning rates) and the
  dataset; writes WORKDIR/influence/ (see the module docstring).
  """
  import jax
  from diffinf_jax import checkpointing
  from diffinf_jax import data as data_lib
  from diffinf_jax import models
  from diffinf_jax import sharding
  from diffinf_jax.influence import detection
  from diffinf_jax.influence import per_example

  cfg = config.influence
  ckpt_dir = os.path.join(workdir, "train", "checkpoints")
  found = checkpointing.list_checkpoints(ckpt_dir)
  if not found:
    raise FileNotFoundError(f"{ckpt_dir}: no checkpoints; run `diffinf train` "
                            "first")
  steps = [int(c["step"]) for c in found]
  lrs = validate_learning_rates(
      steps, [c.get("learning_rate") for c in found],
      tuple(cfg.learning_rates))
  dataset = data_lib.get_dataset(config, workdir)
  arrays = dataset.arrays("train")
  model = models.get_model(config.model)
  abstract = jax.eval_shape(
      lambda x: model.init(jax.random.key(0), x, train=False),
      jax.ShapeDtypeStruct((1,) + arrays["image"].shape[1:], np.float32))

  def loader(step):
    def load():
      variables = checkpointing.restore_variables(ckpt_dir, step, abstract)
      check_structure(variables, abstract, f"{ckpt_dir} step {step}")
      return variables
    return load

  cks = [Checkpoint(s, lr, loader(s)) for s, lr in zip(steps, lrs)]
  fn = per_example.make_sq_norm_fn(
      model, method=cfg.method, branch_rule=cfg.get("branch_rule", "time"),
      vmap_chunk=cfg.vmap_chunk)
  mesh = sharding.data_mesh()
  work_id = fingerprint(
      method=cfg.method, branch=cfg.get("branch_rule", "time"),
      model=config.model.to_dict(), index=arrays["index"],
      label=arrays["label"], ckpt_dir=os.path.abspath(ckpt_dir))
  out_dir = os.path.join(workdir, "influence")
  result = self_influence(
      fn, cks, arrays, batch_size=cfg.batch_size, chunk_size=cfg.chunk_size,
      store_dir=os.path.join(out_dir, "partial"), work_id=work_id, mesh=mesh)
  meta = {"steps": steps, "learning_rates": lrs, "method": cfg.method,
          "num_samples": int(len(arrays["label"])),
          "num_devices": int(mesh.devices.size),
          "bn_mode": "inference (running statistics)"}
  write_outputs(out_dir, result, arrays, meta)
  metrics = detection.write_detection(out_dir, result["scores"], arrays,
                                      cfg.tau, cfg.top_k_grid)
  return {"detection": metrics, "timings": result["timings"],
          "num_checkpoints": len(cks)}
