"""Deterministic train/val/test splits by dataset index."""

from __future__ import annotations

import numpy as np

SPLITS = ("train", "val", "test")


def random_split(indices: np.ndarray, val_fraction: float,
                 test_fraction: float, seed: int) -> np.ndarray:
  """Assigns each index a split with a seeded permutation.

  Args:
    indices: [N] dataset indices (the assignment depends only on their order
      after sorting, so it is stable across runs).
    val_fraction, test_fraction: fractions of N (rounded to whole images).

  Returns:
    [N] array of split names aligned with `np.sort(indices)`.
  """
  for name, f in (("val", val_fraction), ("test", test_fraction)):
    if not 0.0 <= f < 1.0:
      raise ValueError(f"data.split.{name}_fraction={f}: must lie in [0, 1)")
  if val_fraction + test_fraction >= 1.0:
    raise ValueError("data.split val_fraction + test_fraction must be < 1")
  n = len(indices)
  perm = np.random.default_rng(seed).permutation(n)
  n_val = int(round(val_fraction * n))
  n_test = int(round(test_fraction * n))
  split = np.full(n, "train", dtype="<U5")
  split[perm[:n_val]] = "val"
  split[perm[n_val:n_val + n_test]] = "test"
  return split


def official_ffhq_split(indices: np.ndarray, val_fraction: float,
                        seed: int) -> np.ndarray:
  """FFHQ's boundary: < 60,000 train (+ a seeded val part), >= 60,000 test."""
  indices = np.asarray(indices)
  split = np.where(indices >= 60000, "test", "train").astype("<U5")
  train_pos = np.flatnonzero(split == "train")
  perm = np.random.default_rng(seed).permutation(len(train_pos))
  n_val = int(round(val_fraction * len(train_pos)))
  split[train_pos[perm[:n_val]]] = "val"
  return split
