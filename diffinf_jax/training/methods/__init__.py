"""Noisy-label training methods (the baselines), chosen by name.

Protocol. A method module provides ONE of:
  * `per_example_loss(logits [B, K], batch) -> [B]`: it only changes the loss
    of the shared loop (diffinf_jax.training.loop). `batch` holds image, label
    (assigned), index, mask and progress (epoch / num_epochs, [B] float32).
  * `train(config, dataset, out_dir) -> dict`: its own loop (two networks,
    per-sample state, ...). It must leave OUT_DIR/checkpoints/ in the format
    of diffinf_jax.checkpointing for a `config.model` classifier (the network
    that is evaluated), so that evaluation is the same for every method.
Methods that change the DATA rather than the loss (influence removal,
DiffInf) are plain cross-entropy on a derived dataset; the comparison stage
builds those datasets (`diffinf_jax.data.refined`).
"""

from __future__ import annotations

import importlib

METHODS = ("ce", "small_loss", "coteaching", "elr", "elr_plus", "proselflc",
           "promix")


def get_method(name: str):
  """The module of training method `name`."""
  if name not in METHODS:
    raise ValueError(f"training method {name!r}: use one of {list(METHODS)}")
  return importlib.import_module(f"diffinf_jax.training.methods.{name}")


def train_method(name: str, config, dataset, out_dir: str) -> dict:
  """Trains method `name` on `dataset`; checkpoints land in OUT_DIR."""
  from diffinf_jax.training import loop
  module = get_method(name)
  if hasattr(module, "train"):
    return module.train(config, dataset, out_dir)
  return loop.train(config, dataset, out_dir,
                    loss_fn=module.per_example_loss)
