"""The refined dataset D' (paper eq. 13) and the removal variant.

D' is the training set with every high-influence image replaced by its
correction and its label unchanged (same size, same indices); the removal
variant drops those indices instead. Both are `Dataset`s, so the training
stage loads them exactly like the original.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from diffinf_jax import fileio


def _to_uint8(image: np.ndarray) -> np.ndarray:
  if image.dtype == np.uint8:
    return image
  return np.clip(np.round((image + 1.0) * 127.5), 0, 255).astype(np.uint8)


def load_corrected(workdir: str) -> dict[str, np.ndarray]:
  path = os.path.join(workdir, "correct", "corrected.npz")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: not found; run `diffinf correct` first")
  return fileio.load_npz(path, required=("index", "image"))


def replace_images(dataset, index: np.ndarray, images: np.ndarray):
  """D': a copy of `dataset` with the images at `index` replaced.

  Args:
    dataset: a `diffinf_jax.data.Dataset`.
    index: [M] dataset indices (must all be training samples).
    images: [M, H, W, 3] float in [-1, 1] or uint8, same size as the dataset.

  Raises:
    KeyError/ValueError: unknown index, a non-training index, wrong shape.
  """
  index = np.asarray(index)
  if len(np.unique(index)) != len(index):
    raise ValueError("corrected images contain duplicate indices")
  pos = dataset.position_of(index)
  not_train = dataset.split[pos] != "train"
  if np.any(not_train):
    raise ValueError(f"corrected index {index[not_train][0]} is not a "
                     "training sample; only training images are corrected")
  images = _to_uint8(np.asarray(images))
  if images.shape[1:] != dataset.image.shape[1:] or len(images) != len(index):
    raise ValueError(f"corrected images have shape {images.shape}; expected "
                     f"[{len(index)}, *{dataset.image.shape[1:]}]")
  new_image = dataset.image.copy()
  new_image[pos] = images
  return dataclasses.replace(dataset, image=new_image)


def remove_indices(dataset, index: np.ndarray):
  """The removal variant: the training samples at `index` are dropped."""
  pos = dataset.position_of(np.asarray(index))
  keep = np.ones(len(dataset.index), bool)
  keep[pos] = False
  return dataclasses.replace(
      dataset, index=dataset.index[keep], image=dataset.image[keep],
      clean_label=dataset.clean_label[keep],
      noisy_label=dataset.noisy_label[keep], split=dataset.split[keep],
      extras={k: v[keep] for k, v in dataset.extras.items()})


def refined_dataset(dataset, workdir: str):
  """D' from W/correct/corrected.npz (never a partially written one)."""
  corrected = load_corrected(workdir)
  return replace_images(dataset, corrected["index"], corrected["image"])


def clean_view(dataset):
  """The same dataset with the clean labels assigned (for the oracle)."""
  return dataclasses.replace(dataset, noisy_label=dataset.clean_label.copy())
