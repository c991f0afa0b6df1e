"""Deterministic batching of in-memory arrays.

Batches are dicts of numpy arrays sharing the leading axis. uint8 images are
converted to float32 in [-1, 1] per batch, so large datasets stay compact.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np


def to_float_image(image: np.ndarray) -> np.ndarray:
  """uint8 [0, 255] -> float32 [-1, 1]; float input is returned as float32."""
  if image.dtype == np.uint8:
    return image.astype(np.float32) / 127.5 - 1.0
  return image.astype(np.float32, copy=False)


def to_uint8(image: np.ndarray) -> np.ndarray:
  """float [-1, 1] -> uint8 [0, 255] (rounded, clipped); uint8 passes through."""
  image = np.asarray(image)
  if image.dtype == np.uint8:
    return image
  return np.clip(np.round((image + 1.0) * 127.5), 0, 255).astype(np.uint8)


def num_batches(n: int, batch_size: int, drop_remainder: bool) -> int:
  return n // batch_size if drop_remainder else -(-n // batch_size)


def iterate_batches(arrays: dict[str, np.ndarray], batch_size: int, *,
                    shuffle: bool = False, seed: int = 0, epoch: int = 0,
                    drop_remainder: bool = False, start_batch: int = 0
                    ) -> Iterator[dict[str, np.ndarray]]:
  """Yields batches in an order fixed by (seed, epoch).

  Args:
    arrays: dict of [N, ...] arrays.
    batch_size: samples per batch; the last batch may be smaller unless
      `drop_remainder` (pad it with `sharding.pad_batch` for static shapes).
    shuffle: permute with `np.random.default_rng([seed, epoch])`.
    start_batch: skip this many batches (resuming mid-epoch).

  Yields:
    dict with the same keys; `image` as float32 in [-1, 1] and a `mask`
    (all True) if the input had none.
  """
  n = len(next(iter(arrays.values())))
  order = (np.random.default_rng([seed, epoch]).permutation(n) if shuffle
           else np.arange(n))
  for b in range(start_batch, num_batches(n, batch_size, drop_remainder)):
    sel = order[b * batch_size:(b + 1) * batch_size]
    batch = {k: v[sel] for k, v in arrays.items()}
    if "image" in batch:
      batch["image"] = to_float_image(batch["image"])
    batch.setdefault("mask", np.ones(len(sel), bool))
    yield batch
