"""Training methods (the noisy-label baselines), chosen by name.

Protocol. A method module provides ONE of:
  * `per_example_loss(logits [B, K], batch) -> [B]`: it only changes the loss
    of the shared loop (diffinf_jax.training.loop). `batch` holds image, label
    (assigned), index, mask and progress (epoch / num_epochs, [B] float32).
  * `train(config, workdir, dataset, *, out_subdir) -> dict`: its own loop
    (two networks, per-sample state, ...). It must leave
    W/<out_subdir>/checkpoints/ in the format of diffinf_jax.checkpointing for
    a `config.model` classifier (the network that is evaluated), so that
    evaluation is the same for every method.
Methods that change the DATA rather than the loss (influence_removal,
diffinf) provide `prepare_dataset(config, workdir, dataset) -> dataset` and
train with cross-entropy.
"""

from __future__ import annotations

import importlib

METHODS = {
    "ce": "ce",
    "small_loss": "small_loss",
    "coteaching": "coteaching",
    "elr": "elr",
    "elr_plus": "elr_plus",
    "proselflc": "proselflc",
    "promix": "promix",
    "divide_mix": "divide_mix",
    "influence_removal": "influence_removal",
    "diffinf": "diffinf",
}


def get_method(name: str):
  if name not in METHODS:
    raise ValueError(f"training method {name!r}: use one of {sorted(METHODS)}")
  try:
    return importlib.import_module(
        f"diffinf_jax.training.methods.{METHODS[name]}")
  except ModuleNotFoundError as e:
    if e.name == f"diffinf_jax.training.methods.{METHODS[name]}":
      raise NotImplementedError(f"training method {name!r} is not built "
                                "yet") from None
    raise


def train_method(name: str, config, workdir: str, dataset,
                 out_subdir: str) -> dict:
  """Trains `name` on `dataset`; checkpoints land in W/<out_subdir>."""
  from diffinf_jax.training import loop
  module = get_method(name)
  if hasattr(module, "prepare_dataset"):
    dataset = module.prepare_dataset(config, workdir, dataset)
  if hasattr(module, "train"):
    return module.train(config, workdir, dataset, out_subdir=out_subdir)
  return loop.train_and_evaluate(config, workdir, dataset,
                                 out_subdir=out_subdir,
                                 loss_fn=module.per_example_loss)
