"""Running a trained classifier: probabilities and features over arrays.

Pure compute on a (model, variables) pair, batched with static shapes and
split over all devices; where the variables come from (a checkpoint of a
work dir) is the caller's business.
"""

from __future__ import annotations

import functools

import jax
import numpy as np

from diffinf_jax import sharding
from diffinf_jax.data import pipeline


def abstract_variables(model, image_shape):
  """Shapes/dtypes of the model's variables for images of `image_shape`
  ([H, W, C]), without computing anything (restore targets)."""
  return jax.eval_shape(
      lambda x: model.init(jax.random.key(0), x, train=False),
      jax.ShapeDtypeStruct((1,) + tuple(image_shape), np.float32))


def predict_probs(apply_fn, variables, images):
  """Softmax probabilities [B, K] of images [B, H, W, C] (eval mode)."""
  logits, _ = apply_fn(variables, images, train=False)
  return jax.nn.softmax(logits, axis=-1)


def _batched(fn, images: np.ndarray, batch_size: int, mesh) -> np.ndarray:
  """fn(image batch) over all rows, one compiled shape, split over `mesh`."""
  batch_size = sharding.global_batch_size(batch_size, mesh)
  out = []
  for start in range(0, len(images), batch_size):
    chunk = pipeline.to_float_image(images[start:start + batch_size])
    n = len(chunk)
    batch = sharding.pad_batch({"image": chunk}, batch_size)
    batch = sharding.shard_batch(batch, mesh)
    out.append(np.asarray(fn(batch["image"]))[:n])
  return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def predict_dataset(apply_fn, variables, images: np.ndarray, batch_size: int,
                    mesh=None) -> np.ndarray:
  """Softmax probabilities [N, K] of float or uint8 images [N, H, W, C]."""
  mesh = mesh if mesh is not None else sharding.data_mesh()
  fn = jax.jit(functools.partial(predict_probs, apply_fn))
  variables = sharding.replicate(variables, mesh)
  return _batched(lambda x: fn(variables, x), images, batch_size, mesh)


def extract_features(model, variables, images: np.ndarray, batch_size: int,
                     mesh=None) -> np.ndarray:
  """[N, F] penultimate features g(x) (`aux['features']`, eval mode).

  The weights are compiled in as constants (as h_omega's inputs always
  were), which XLA may fold: features match that program bit for bit.
  """
  mesh = mesh if mesh is not None else sharding.data_mesh()
  fn = jax.jit(lambda x: model.apply(variables, x, train=False)[1]
               ["features"])
  return _batched(fn, images, batch_size, mesh)


@functools.partial(jax.jit, static_argnums=0)
def _features_and_probs(model, variables, x):
  """[B, F + K]: features and softmax side by side (one program for every
  checkpoint: the weights are an argument)."""
  logits, aux = model.apply(variables, x, train=False)
  return jax.numpy.concatenate([aux["features"], jax.nn.softmax(logits, -1)],
                               axis=-1)


def features_and_probs(model, variables, images: np.ndarray, batch_size: int,
                       mesh=None) -> tuple[np.ndarray, np.ndarray]:
  """([N, F] penultimate features, [N, K] softmax) in one pass: the input
  and output of the head's last Dense (what last-layer scores need)."""
  mesh = mesh if mesh is not None else sharding.data_mesh()
  variables = sharding.replicate(variables, mesh)
  out = _batched(lambda x: _features_and_probs(model, variables, x), images,
                 batch_size, mesh)
  k = int(model.num_classes)
  return out[:, :-k], out[:, -k:]
