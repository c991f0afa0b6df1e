"""Shared pieces of the baselines that need their own loop.

Every own loop trains `config.model` classifiers with the same optimiser,
augmentation, batching and sharding as the shared loop
(diffinf_jax.training.loop) and saves the evaluated network's final
checkpoint in the standard format, so evaluation is identical for all methods.
"""

from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np

from diffinf_jax import checkpointing
from diffinf_jax import data as data_lib
from diffinf_jax import models
from diffinf_jax import progress
from diffinf_jax import sharding
from diffinf_jax.training import state as state_lib


class Setup:
  """Model, optimiser, mesh, batch size and training arrays of a run."""

  def __init__(self, config, dataset):
    tc = config.train
    self.config = config
    self.mesh = sharding.data_mesh()
    self.batch_size = sharding.global_batch_size(tc.batch_size, self.mesh)
    arrays = dataset.arrays("train", raw=True)
    self.train = {k: arrays[k] for k in ("image", "label", "index")}
    # Row of each training sample: per-sample state is indexed by it.
    self.train["row"] = np.arange(len(arrays["label"]), dtype=np.int32)
    self.num_train = len(arrays["label"])
    if self.num_train == 0:
      raise ValueError("the training split is empty")
    self.num_classes = int(config.model.num_classes)
    self.steps_per_epoch = max(1, self.num_train // self.batch_size)
    self.num_epochs = int(tc.num_epochs)
    self.lr_fn = state_lib.learning_rate_fn(tc, self.steps_per_epoch)
    self.model = models.get_model(config.model)
    self.tx = state_lib.make_optimizer(tc, self.lr_fn)

  def init_state(self, seed_offset: int = 0):
    rng = jax.random.fold_in(jax.random.key(int(self.config.seed)),
                             seed_offset)
    state = state_lib.create_train_state(
        self.model, rng, self.train["image"].shape[1:], self.tx)
    return sharding.replicate(state, self.mesh)

  def epochs(self, desc: str):
    """The epoch numbers, with progress output (a bar or log lines)."""
    return progress.track(range(self.num_epochs), total=self.num_epochs,
                          desc=desc, unit="epoch")

  def batches(self, epoch: int):
    """Sharded float batches with `mask`, `progress` and `row`."""
    drop = self.num_train >= self.batch_size
    for batch in data_lib.iterate_batches(
        self.train, self.batch_size, shuffle=True,
        seed=int(self.config.seed), epoch=epoch, drop_remainder=drop):
      batch = sharding.pad_batch(batch, self.batch_size)
      batch["image"] = data_lib.to_float_image(batch["image"])
      batch["progress"] = np.full(len(batch["label"]),
                                  epoch / self.num_epochs, np.float32)
      yield sharding.shard_batch(batch, self.mesh)


def forward(state, params, images, rng, train: bool = True):
  """(logits, new batch_stats) of one network in training mode."""
  (logits, _), mutated = state.apply_fn(
      {"params": params, "batch_stats": state.batch_stats}, images,
      train=train, mutable=["batch_stats"], rngs={"dropout": rng})
  return logits, mutated["batch_stats"]


def safe_rows(rows, valid, num_rows: int):
  """Training rows with padding rows sent to the sink row `num_rows`."""
  return jnp.where(valid, rows, num_rows)


def save_final(setup: Setup, state, out_dir: str, params=None) -> None:
  """The evaluated network's final checkpoint in the standard format."""
  step = int(state.step)
  variables = {"params": state.params if params is None else params,
               "batch_stats": state.batch_stats}
  checkpointing.save(
      checkpointing.run_checkpoints(out_dir), step, variables,
      {"opt_state": state.opt_state, "step": state.step,
       "epoch": np.int64(setup.num_epochs - 1), "best_val": np.float64(0)},
      {"epoch": setup.num_epochs - 1,
       "learning_rate": state_lib.mean_lr(setup.lr_fn, 0, step)})
