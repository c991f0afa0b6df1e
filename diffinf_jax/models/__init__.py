"""Classifier models, built from the `model` config section by name."""

from __future__ import annotations

import jax.numpy as jnp

from diffinf_jax.models import resnet

MODELS = {"resnet18": resnet.ResNet18}


def get_model(model_config):
  """Builds the classifier of `config.model` (a plain Flax Linen module)."""
  name = model_config.name
  if name not in MODELS:
    raise ValueError(f"config model.name={name!r}: use one of {sorted(MODELS)}")
  return MODELS[name](
      num_classes=int(model_config.num_classes),
      width_multiplier=float(model_config.width_multiplier),
      stem=str(model_config.stem), head_hidden=int(model_config.head_hidden),
      dropout=float(model_config.dropout),
      dtype=jnp.dtype(model_config.get("dtype", "float32")))
