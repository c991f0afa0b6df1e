"""Derived datasets: D' (paper eq. 13), the removal variant, relabelled views.

D' is the training set with every flagged image replaced by its correction
and its label unchanged (same size, same indices); the removal variant drops
those indices instead. All are `Dataset`s, so training loads them exactly
like the original.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from diffinf_jax.data import pipeline


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
  images = pipeline.to_uint8(images)
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


def clean_view(dataset):
  """The same dataset with every label clean (the "clean labels" ceiling and
  the cross-fitted judge train on it)."""
  return dataclasses.replace(dataset, noisy_label=dataset.clean_label.copy())


def relabel_clean(dataset, index: np.ndarray):
  """The samples at `index` get their clean label: a perfect correction of
  exactly that set (the ceiling of DiffInf at the same flagged set)."""
  pos = dataset.position_of(np.asarray(index))
  noisy = dataset.noisy_label.copy()
  noisy[pos] = dataset.clean_label[pos]
  return dataclasses.replace(dataset, noisy_label=noisy)


def drop_flipped(dataset, index: np.ndarray):
  """Removes only the truly mislabelled samples among `index` (removal with
  a perfect filter at the same flagged set)."""
  index = np.asarray(index)
  pos = dataset.position_of(index)
  return remove_indices(dataset, index[dataset.flipped[pos]])
