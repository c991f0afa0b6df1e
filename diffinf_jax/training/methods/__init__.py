"""Training methods (noisy-label baselines plug in here), chosen by name.

A method module exposes `per_example_loss(logits, batch) -> [B]` when it only
changes the loss of the shared loop (diffinf_jax.training.loop); methods that
need their own loop (two networks, per-sample state) provide `train(config,
workdir, dataset) -> dict` instead.
"""

from __future__ import annotations

import importlib

METHODS = {"ce": "ce"}


def get_method(name: str):
  if name not in METHODS:
    raise ValueError(f"training method {name!r}: use one of {sorted(METHODS)}")
  return importlib.import_module(f"diffinf_jax.training.methods.{METHODS[name]}")
