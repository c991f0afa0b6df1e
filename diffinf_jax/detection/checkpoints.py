"""Which TracIn checkpoints to sum: the self-influence signal fades with fit.

A mislabeled sample has a large loss gradient while the network has not yet
memorised it; once the training accuracy on the assigned labels nears 1 its
gradient shrinks like everyone else's (Pruthi et al. 2020 use checkpoints
spread over training for this reason). Rules, applied to the per-checkpoint
scores [C, N] (each already lr_t-weighted, in training order):

  all         every checkpoint: the paper's sum (default)
  first_k     the first k checkpoints
  before_fit  the checkpoints before the training accuracy on the assigned
              labels first exceeds a threshold (needs that accuracy per
              checkpoint); the first checkpoint is always kept
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RULES = ("all", "first_k", "before_fit")
RULE_KEY = "detection.tracin.checkpoints"


def select_checkpoints(num_checkpoints: int, rule: str = "all", *,
                       first_k: int | None = None,
                       train_accuracy: Sequence[float] | None = None,
                       fit_threshold: float | None = None) -> np.ndarray:
  """Indices (training order) of the checkpoints a rule keeps.

  Args:
    num_checkpoints: C.
    rule: one of RULES.
    first_k: for `first_k`, how many leading checkpoints (1..C).
    train_accuracy: for `before_fit`, [C] accuracy on the assigned labels at
      each checkpoint.
    fit_threshold: for `before_fit`, the accuracy above which the network is
      taken to have started memorising (e.g. 1 - the estimated noise rate).

  Returns:
    [C'] int64 indices, increasing, C' >= 1.

  Raises:
    ValueError: unknown rule (names `detection.tracin.checkpoints`), or a
      missing / out-of-range argument of the rule.

  Example:
    >>> select_checkpoints(4, "before_fit", train_accuracy=[.6, .7, .9, .97],
    ...                    fit_threshold=0.8).tolist()
    [0, 1]
  """
  c = int(num_checkpoints)
  if c < 1:
    raise ValueError("no checkpoints to select from")
  if rule == "all":
    return np.arange(c)
  if rule == "first_k":
    if first_k is None or not 1 <= int(first_k) <= c:
      raise ValueError(f"{RULE_KEY}=first_k needs detection.tracin.first_k "
                       f"in 1..{c} (the number of checkpoints); got {first_k}")
    return np.arange(int(first_k))
  if rule == "before_fit":
    if train_accuracy is None or fit_threshold is None:
      raise ValueError(f"{RULE_KEY}=before_fit needs the training accuracy "
                       "on the assigned labels at every checkpoint and "
                       "detection.tracin.fit_threshold")
    acc = np.asarray(train_accuracy, np.float64)
    if acc.shape != (c,):
      raise ValueError(f"train_accuracy has shape {acc.shape}; expected "
                       f"({c},), one per checkpoint")
    over = np.flatnonzero(acc > float(fit_threshold))
    # Keep at least the first checkpoint: it is the least-fitted one there is.
    stop = max(int(over[0]) if over.size else c, 1)
    return np.arange(stop)
  raise ValueError(f"{RULE_KEY}={rule!r}: use one of {RULES}")

