"""Classifier training: jitted data-parallel steps, Orbax checkpoints, resume.

`train(config, dataset, out_dir)` trains `config.model` on the training
split with a per-example loss (default: cross-entropy on the assigned
labels), validates every epoch on the clean validation split, and writes
OUT_DIR/:

  checkpoints/   every `save_every_epochs` and the last epoch (all kept),
                 metadata {step, epoch, learning_rate (mean over the steps
                 since the previous checkpoint: TracIn's eta_t),
                 lr_last_step, val_accuracy, config_hash}
  best/          the best-on-validation checkpoint
  history.json   per epoch: train/val loss and accuracy, lr_last_step
  curves.png     learning curves; metrics.jsonl + TensorBoard events

Randomness is a function of (seed, step) and the data order of (seed, epoch),
so resuming from a checkpoint reproduces an uninterrupted run exactly.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import time

import jax
import jax.numpy as jnp
import numpy as np

from diffinf_jax import checkpointing
from diffinf_jax import configuration
from diffinf_jax import data as data_lib
from diffinf_jax import fileio
from diffinf_jax import losses
from diffinf_jax import metrics as metrics_lib
from diffinf_jax import models
from diffinf_jax import plots
from diffinf_jax import progress
from diffinf_jax import sharding
from diffinf_jax import writers
from diffinf_jax.models import classifier
from diffinf_jax.training import state as state_lib

# The config sections a trained classifier depends on (recorded in every
# checkpoint's metadata, so resuming never mixes two configs).
TRAIN_SECTIONS = ("seed", "data", "noise", "model", "train")


def augment(images, rng, flip: bool, crop_pad: int):
  """Random horizontal flip and reflect-pad + random crop, per image."""
  b, h, w, _ = images.shape
  flip_rng, crop_rng = jax.random.split(rng)
  if flip:
    do = jax.random.bernoulli(flip_rng, 0.5, (b,))
    images = jnp.where(do[:, None, None, None], images[:, :, ::-1], images)
  if crop_pad > 0:
    p = crop_pad
    padded = jnp.pad(images, ((0, 0), (p, p), (p, p), (0, 0)), mode="reflect")
    offsets = jax.random.randint(crop_rng, (b, 2), 0, 2 * p + 1)
    images = jax.vmap(lambda img, o: jax.lax.dynamic_slice(
        img, (o[0], o[1], 0), (h, w, img.shape[-1])))(padded, offsets)
  return images


def train_step(state, batch, rng, *, loss_fn, flip, crop_pad):
  """One optimiser step on the masked mean of per-example losses."""
  step_rng = jax.random.fold_in(rng, state.step)
  aug_rng, drop_rng = jax.random.split(step_rng)
  x = augment(batch["image"], aug_rng, flip, crop_pad)

  def objective(params):
    (logits, _), mutated = state.apply_fn(
        {"params": params, "batch_stats": state.batch_stats}, x, train=True,
        mutable=["batch_stats"], rngs={"dropout": drop_rng})
    per = loss_fn(logits, batch)
    return losses.masked_mean(per, batch["mask"]), (logits, per, mutated)

  grads, (logits, per, mutated) = jax.grad(objective, has_aux=True)(
      state.params)
  state = state.apply_gradients(grads=grads,
                                batch_stats=mutated["batch_stats"])
  correct = (jnp.argmax(logits, -1) == batch["label"]).astype(jnp.float32)
  m = metrics_lib.TrainMetrics.single_from_model_output(
      loss=per, accuracy=correct, mask=batch["mask"])
  return state, m


def _epoch_batches(arrays, batch_size, seed, epoch):
  n = len(arrays["label"])
  drop = n >= batch_size
  for batch in data_lib.iterate_batches(arrays, batch_size, shuffle=True,
                                        seed=seed, epoch=epoch,
                                        drop_remainder=drop):
    yield sharding.pad_batch(batch, batch_size)


def _evaluate_split(state, arrays, batch_size, mesh) -> dict:
  if len(arrays["label"]) == 0:
    return {}
  probs = classifier.predict_dataset(state.apply_fn, _variables(state),
                                     arrays["image"], batch_size, mesh)
  labels = arrays["label"]
  nll = -np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None))
  return {"loss": float(nll.mean()),
          "accuracy": metrics_lib.accuracy(labels, probs.argmax(1))}


def _train_dict(state, epoch: int, best_val: float) -> dict:
  return {"opt_state": state.opt_state, "step": state.step,
          "epoch": np.int64(epoch), "best_val": np.float64(best_val)}


def _variables(state) -> dict:
  return {"params": state.params, "batch_stats": state.batch_stats}


def _save_best(best_dir: str, state, step: int, meta: dict) -> None:
  """Replaces OUT/best with this step (written beside it, then renamed)."""
  tmp = best_dir + ".tmp"
  if os.path.isdir(tmp):
    shutil.rmtree(tmp)
  checkpointing.save(tmp, step, _variables(state),
                     _train_dict(state, meta["epoch"], meta["val_accuracy"]),
                     meta, require_learning_rate=False)
  if os.path.isdir(best_dir):
    shutil.rmtree(best_dir)
  os.replace(tmp, best_dir)


def _resume(ckpt_dir: str, state, config_hash: str):
  """Restores the latest checkpoint into `state`; returns (state, epoch, best).

  Raises:
    ValueError: the checkpoints were written under another config (their
      metadata records its hash), so resuming would mix two runs.
  """
  found = checkpointing.list_checkpoints(ckpt_dir)
  if not found:
    return state, -1, -np.inf
  if found[-1].get("config_hash") != config_hash:
    raise ValueError(
        f"{ckpt_dir} holds checkpoints of another config (model, train, "
        "data, noise or seed differ); pass --force to retrain from scratch "
        "or use another --workdir")
  step = int(found[-1]["step"])
  variables = checkpointing.restore_variables(ckpt_dir, step,
                                              _variables(state))
  train = checkpointing.restore_train(ckpt_dir, step,
                                      _train_dict(state, 0, 0.0))
  state = state.replace(
      params=jax.tree_util.tree_map(jnp.asarray, variables["params"]),
      batch_stats=jax.tree_util.tree_map(jnp.asarray,
                                         variables["batch_stats"]),
      opt_state=jax.tree_util.tree_map(jnp.asarray, train["opt_state"]),
      step=jnp.asarray(train["step"]))
  logging.info("resuming from %s step %d (epoch %d)", ckpt_dir, step,
               int(train["epoch"]))
  return state, int(train["epoch"]), float(train["best_val"])


def cross_entropy_loss(logits, batch):
  """[B] cross-entropy to the assigned labels batch['label']."""
  return losses.softmax_xent(logits, batch["label"])


def _train_arrays(dataset) -> dict:
  arrays = dataset.arrays("train", raw=True)
  if len(arrays["label"]) == 0:
    raise ValueError("the training split is empty")
  return {k: arrays[k] for k in ("image", "label", "index")}


def train(config, dataset, out_dir: str, *, loss_fn=cross_entropy_loss,
          stop_after_epoch: int | None = None) -> dict:
  """Trains the classifier of `config` on `dataset`'s training split.

  Args:
    config: the run config (sections model, train, seed).
    dataset: a `diffinf_jax.data.Dataset` (or anything with `.arrays(split,
      raw=True)` and `num_classes`).
    out_dir: where checkpoints, history and curves go (see module docstring).
    loss_fn: per-example loss `(logits, batch) -> [B]`; `batch` holds image,
      label (assigned), index, mask and progress (epoch / num_epochs).
    stop_after_epoch: stop after this epoch (simulates an interruption in
      tests; the run resumes on the next call).

  Returns:
    summary dict (epochs, steps, final and best validation accuracy, seconds).
  """
  t0 = time.time()
  tc = config.train
  if dataset.num_classes != config.model.num_classes:
    raise ValueError(f"model.num_classes={config.model.num_classes} but the "
                     f"dataset has {dataset.num_classes} classes")
  ckpt_dir = checkpointing.run_checkpoints(out_dir)
  train_arrays = _train_arrays(dataset)
  val_arrays = dataset.arrays("val", raw=True)
  mesh = sharding.data_mesh()
  batch_size = sharding.global_batch_size(tc.batch_size, mesh)
  n_train = len(train_arrays["label"])
  steps_per_epoch = max(1, n_train // batch_size)
  lr_fn = state_lib.learning_rate_fn(tc, steps_per_epoch)
  model = models.get_model(config.model)
  init_rng, step_rng = jax.random.split(jax.random.key(int(config.seed)))
  state = state_lib.create_train_state(
      model, init_rng, train_arrays["image"].shape[1:],
      state_lib.make_optimizer(tc, lr_fn))
  config_hash = configuration.config_hash(config, TRAIN_SECTIONS)
  state, last_epoch, best_val = _resume(ckpt_dir, state, config_hash)
  history_path = os.path.join(out_dir, "history.json")
  history = []
  if last_epoch >= 0 and os.path.isfile(history_path):
    history = [h for h in fileio.read_json(history_path)
               if h["epoch"] <= last_epoch]
  step_fn = jax.jit(functools.partial(
      train_step, loss_fn=loss_fn, flip=bool(tc.augment_flip),
      crop_pad=int(tc.augment_crop_pad)))
  state = sharding.replicate(state, mesh)
  # The checkpoint, not history.json, says where the last interval ended
  # (a kill between the two writes must not change the next eta_t).
  last_saved_step = int(state.step)
  writer = writers.MetricWriter(out_dir, resume_step=last_saved_step)
  num_epochs = int(tc.num_epochs)
  epochs = progress.track(range(last_epoch + 1, num_epochs),
                          total=num_epochs, done=last_epoch + 1,
                          desc=f"train {os.path.basename(out_dir)}",
                          unit="epoch")
  for epoch in epochs:
    epoch_metrics = None
    for batch in _epoch_batches(train_arrays, batch_size, int(config.seed),
                                epoch):
      batch["image"] = data_lib.to_float_image(batch["image"])
      # Training progress in [0, 1) for schedules inside per-example losses.
      batch["progress"] = np.full(len(batch["label"]), epoch / num_epochs,
                                  np.float32)
      state, m = step_fn(state, sharding.shard_batch(batch, mesh), step_rng)
      epoch_metrics = m if epoch_metrics is None else epoch_metrics.merge(m)
    train_m = epoch_metrics.compute()
    if not np.isfinite(float(train_m["loss"])):
      raise FloatingPointError(f"training loss became {train_m['loss']} in "
                               f"epoch {epoch}; lower train.lr")
    val_m = _evaluate_split(state, val_arrays, batch_size, mesh)
    step = int(state.step)
    record = {"epoch": epoch, "step": step,
              "train_loss": float(train_m["loss"]),
              "train_accuracy": float(train_m["accuracy"]),
              "val_loss": val_m.get("loss"),
              "val_accuracy": val_m.get("accuracy"),
              "lr_last_step": float(lr_fn(max(step - 1, 0)))}
    history.append(record)
    writer.write_scalars(step, {k: v for k, v in record.items()
                                if v is not None and k not in ("epoch",
                                                               "step")})
    logging.info("epoch %d/%d: train loss %.4f acc %.4f | val loss %s acc %s",
                 epoch + 1, num_epochs, record["train_loss"],
                 record["train_accuracy"], record["val_loss"],
                 record["val_accuracy"])
    val_acc = record["val_accuracy"]
    meta = {"epoch": epoch, "lr_last_step": record["lr_last_step"],
            "val_accuracy": val_acc, "config_hash": config_hash}
    if val_acc is not None and val_acc > best_val:
      best_val = val_acc
      _save_best(os.path.join(out_dir, "best"), state, step, dict(meta))
    if (epoch + 1) % int(tc.save_every_epochs) == 0 or epoch == num_epochs - 1:
      meta["learning_rate"] = state_lib.mean_lr(lr_fn, last_saved_step, step)
      meta["train_accuracy"] = record["train_accuracy"]
      # History first: a resume truncates it to the checkpoint it restarts
      # from, so a kill between these writes loses nothing.
      fileio.write_json(history_path, history)
      plots.learning_curves(history, os.path.join(out_dir, "curves.png"))
      checkpointing.save(ckpt_dir, step, _variables(state),
                         _train_dict(state, epoch, best_val), meta)
      last_saved_step = step
    if stop_after_epoch is not None and epoch >= stop_after_epoch:
      writer.close()
      return {"interrupted_after_epoch": epoch}
  writer.close()
  fileio.write_json(history_path, history)
  if history:
    plots.learning_curves(history, os.path.join(out_dir, "curves.png"))
  return {"epochs": num_epochs, "steps": int(state.step),
          "final_val_accuracy": history[-1]["val_accuracy"] if history
          else None, "best_val_accuracy": best_val,
          "seconds": round(time.time() - t0, 2)}
