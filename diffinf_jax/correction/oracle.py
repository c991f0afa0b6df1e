"""An independent judge: a classifier of the same family trained on CLEAN labels.

Where clean labels are known (the demo, or any run with synthetic noise), the
oracle says whether an image shows its assigned label, before and after
correction. It is trained once per dataset and cached (keyed by the data,
model and training config; the label noise plays no part).
"""

from __future__ import annotations

import os

import numpy as np

from diffinf_jax import configuration
from diffinf_jax.correction import refined


def oracle_dir(config) -> str:
  from diffinf_jax.data import demo_faces
  base = os.path.dirname(demo_faces.default_cache_dir())
  key = configuration.config_hash(config, ("seed", "model", "train"))
  data_key = configuration.config_hash(
      {"data": config.data.to_dict()}, ("data",))
  return os.path.join(base, "oracle", f"{data_key}_{key}")


def get_oracle(config, dataset):
  """(model, variables) of the clean-label classifier, training it if needed."""
  from diffinf_jax import evaluation
  from diffinf_jax.training import loop
  out = oracle_dir(config)
  ckpt_dir = os.path.join(out, "train", "checkpoints")
  shape = dataset.image.shape[1:]
  try:
    return evaluation.load_classifier(config, ckpt_dir, shape)
  except (FileNotFoundError, ValueError):
    pass
  loop.train_and_evaluate(config, out, refined.clean_view(dataset))
  return evaluation.load_classifier(config, ckpt_dir, shape)


def predict(model, variables, images: np.ndarray, batch_size: int = 256
            ) -> np.ndarray:
  """Softmax probabilities [N, K] of the oracle."""
  from diffinf_jax import sharding
  from diffinf_jax.training import loop
  mesh = sharding.data_mesh()
  batch = -(-batch_size // mesh.devices.size) * mesh.devices.size
  return loop.predict_dataset(model.apply, variables, images, batch, mesh)
