"""Seeded, label-stratified fold assignment for cross-fitting.

Every class is spread over the K folds as evenly as possible, so each
training part of a cross-fit (all folds but one) sees every class and each
held-out fold has about the class mix of the whole set. The assignment is a
pure function of (labels, num_folds, seed).
"""

from __future__ import annotations

import numpy as np

NUM_FOLDS_KEY = "detection.crossfit.num_folds"


def assign_folds(labels: np.ndarray, num_folds: int, seed: int) -> np.ndarray:
  """Fold id of every sample, stratified by its (assigned) label.

  Within each class the samples are shuffled with `seed` and dealt to the
  folds in turn; each class starts where the previous one stopped, so fold
  sizes differ by at most one overall (and per class).

  Args:
    labels: [N] int, the assigned (possibly noisy) labels.
    num_folds: K >= 2.
    seed: seed of the shuffle (same seed, same folds).

  Returns:
    [N] int32 fold ids in 0..K-1.

  Raises:
    ValueError: K < 2, or K larger than the smallest class count (a fold
      would miss that class); the message names `detection.crossfit.num_folds`.

  Example:
    >>> assign_folds(np.array([0, 0, 1, 1, 1, 0]), 2, seed=0).tolist()
    [1, 0, 1, 0, 1, 0]
  """
  labels = np.asarray(labels)
  if labels.ndim != 1:
    raise ValueError(f"labels must be [N]; got shape {labels.shape}")
  k = int(num_folds)
  if k < 2:
    raise ValueError(f"{NUM_FOLDS_KEY}={num_folds}: cross-fitting needs at "
                     "least 2 folds")
  classes, counts = np.unique(labels, return_counts=True)
  if k > counts.min():
    rare = classes[np.argmin(counts)]
    raise ValueError(
        f"{NUM_FOLDS_KEY}={k} exceeds the smallest class count "
        f"({int(counts.min())} samples of class {rare}): some fold would not "
        f"contain that class; set {NUM_FOLDS_KEY} <= {int(counts.min())}")
  rng = np.random.default_rng(seed)
  folds = np.empty(labels.shape[0], np.int32)
  start = 0
  for c in classes:
    members = np.flatnonzero(labels == c)
    members = members[rng.permutation(members.size)]
    folds[members] = (start + np.arange(members.size)) % k
    # Continue dealing where this class stopped: balances the fold sizes.
    start = (start + members.size) % k
  return folds
