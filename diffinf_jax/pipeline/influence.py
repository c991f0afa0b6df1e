"""`diffinf influence`: TracIn self-influence of every training sample."""

from __future__ import annotations

import os

import numpy as np

from diffinf_jax import checkpointing
from diffinf_jax import chunks
from diffinf_jax import fileio
from diffinf_jax import models
from diffinf_jax import sharding
from diffinf_jax import workdir as wd
from diffinf_jax.influence import per_example
from diffinf_jax.influence import tracin
from diffinf_jax.models import classifier
from diffinf_jax.pipeline import data as data_stage

NAME = "influence"
HELP = "TracIn self-influence of every training sample over the checkpoints"
DESCRIPTION = """TracIn self-influence I(i) = sum_t lr_t ||grad loss_i(theta_t)||^2.

Reads W/train/checkpoints (learning rate from each checkpoint's metadata, or
influence.learning_rates), scores the training split with BatchNorm in
inference mode (influence.method: exact | vmap | last_layer) over all devices,
and writes W/influence/: scores.npy, index.npy, per_checkpoint.npy
(lr_t-weighted, the per-checkpoint parts of the score), scores.csv,
meta.json. `diffinf detect` turns the scores into the flagged set. An
interrupted run resumes from the saved chunks in W/influence/partial/; a chunk is reused only for the same
method, model, samples and checkpoint weights."""
DEPENDS = ("data", "train")
SECTIONS = ("influence",)


def scores_csv(index, scores, label, clean_label) -> str:
  """CSV text: index, score, assigned label, clean label (-1 unknown), flipped."""
  lines = ["index,score,label,clean_label,flipped"]
  for i, s, y, c in zip(index, scores, label, clean_label):
    flipped = int(c >= 0 and c != y)
    lines.append(f"{int(i)},{float(s)!r},{int(y)},{int(c)},{flipped}")
  return "\n".join(lines) + "\n"


def _checkpoints(config, workdir: str, image_shape):
  """The TracIn checkpoint list of W/train (step, lr, loader) and the ids
  of their weights."""
  ckpt_dir = wd.checkpoint_dir(wd.train_dir(workdir))
  found = checkpointing.list_checkpoints(ckpt_dir)
  if not found:
    raise FileNotFoundError(f"{ckpt_dir}: no checkpoints; run `diffinf "
                            "train` first")
  steps = [int(c["step"]) for c in found]
  lrs = tracin.validate_learning_rates(
      steps, [c.get("learning_rate") for c in found],
      tuple(config.influence.learning_rates))
  abstract = classifier.abstract_variables(models.get_model(config.model),
                                           image_shape)

  def loader(step):
    return lambda: checkpointing.restore_variables(ckpt_dir, step, abstract)

  cks = [tracin.Checkpoint(s, lr, loader(s)) for s, lr in zip(steps, lrs)]
  return cks, [c.get("variables_digest") for c in found]


def run(config, workdir: str) -> dict:
  cfg = config.influence
  dataset = data_stage.load(config, workdir)
  arrays = dataset.arrays("train")
  cks, digests = _checkpoints(config, workdir, arrays["image"].shape[1:])
  fn = per_example.make_sq_norm_fn(
      models.get_model(config.model), method=cfg.method,
      branch_rule=cfg.branch_rule, vmap_chunk=cfg.vmap_chunk)
  mesh = sharding.data_mesh()
  # What the squared norms depend on: never where the files are, so a moved
  # work dir reuses its chunks and a retrained classifier does not.
  work_id = tracin.fingerprint(
      format=2, method=cfg.method, branch=cfg.branch_rule,
      model=config.model.to_dict(), index=arrays["index"],
      label=arrays["label"], checkpoints=list(zip([c.step for c in cks],
                                                  digests)))
  out_dir = wd.stage_dir(workdir, NAME)
  stores = [chunks.ChunkStore(os.path.join(out_dir, "partial",
                                           f"ckpt_{c.step}"),
                              tracin.fingerprint(work=work_id, step=c.step))
            for c in cks]
  result = tracin.self_influence(
      fn, cks, arrays, batch_size=cfg.batch_size, chunk_size=cfg.chunk_size,
      stores=stores, mesh=mesh)
  fileio.save_npy(wd.influence_file(workdir, "scores.npy"),
                  result["scores"].astype(np.float64))
  fileio.save_npy(wd.influence_file(workdir, "index.npy"),
                  arrays["index"].astype(np.int32))
  fileio.save_npy(wd.influence_file(workdir, "per_checkpoint.npy"),
                  result["per_checkpoint"].astype(np.float64))
  fileio.write_text(wd.influence_file(workdir, "scores.csv"), scores_csv(
      arrays["index"], result["scores"], arrays["label"],
      arrays["clean_label"]))
  fileio.write_json(wd.influence_file(workdir, "meta.json"), {
      "steps": [c.step for c in cks],
      "learning_rates": [c.learning_rate for c in cks],
      "method": cfg.method, "num_samples": int(len(arrays["label"])),
      "num_devices": int(mesh.devices.size),
      "bn_mode": "inference (running statistics)",
      "timings": result["timings"]})
  return {"num_samples": int(len(arrays["label"])),
          "timings": result["timings"], "num_checkpoints": len(cks)}


def summary_line(s: dict) -> str:
  return (f"influence: {s['num_samples']} samples scored over "
          f"{s['num_checkpoints']} checkpoints (detection: `diffinf detect`)")
