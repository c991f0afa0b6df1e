"""How well a suspicion score finds the labels we flipped (flip mask known).

One function for every detector, so their rows are comparable:
  precision         flipped fraction of the flagged set (the top
                    `num_flagged`; precision@tau when num_flagged =
                    ceil(tau N))
  recall            fraction of all flips inside the flagged set
  precision_at_k    precision of the top k, k = number of flips (= recall
                    at k): the figure that matters when the count is
                    estimated
  auroc             AUROC of the score as a flip detector
  random_precision  the flip rate: what a random flagged set achieves
"""

from __future__ import annotations

import numpy as np

from diffinf_jax import metrics
from diffinf_jax.detection import flagging


def detection_metrics(score: np.ndarray, flipped: np.ndarray,
                      num_flagged: int) -> dict:
  """Flagged-set metrics of one detector's score.

  Args:
    score: [N] suspicion (higher = more likely mislabeled).
    flipped: [N] bool, True where the assigned label is wrong.
    num_flagged: size of the flagged set (`flagging.num_flagged`).

  Returns:
    dict: num_samples, num_flipped, num_flagged, precision, recall,
    precision_at_k, auroc, random_precision. recall, precision_at_k and
    auroc are NaN when there are no flips (undefined); precision is NaN for
    an empty flagged set.
  """
  score = np.asarray(score, np.float64)
  flipped = np.asarray(flipped, bool)
  if score.shape != flipped.shape or score.ndim != 1:
    raise ValueError(f"score {score.shape} and flipped {flipped.shape} must "
                     "both be [N]")
  n, num_flips = score.size, int(flipped.sum())
  hits = int(np.sum(flagging.flag_top(score, num_flagged) & flipped))
  hits_at_k = int(np.sum(flagging.flag_top(score, num_flips) & flipped))
  nan = float("nan")
  return {
      "num_samples": n,
      "num_flipped": num_flips,
      "num_flagged": int(num_flagged),
      "precision": hits / num_flagged if num_flagged else nan,
      "recall": hits / num_flips if num_flips else nan,
      "precision_at_k": hits_at_k / num_flips if num_flips else nan,
      "auroc": metrics.binary_auroc(flipped, score) if num_flips else nan,
      "random_precision": num_flips / n if n else nan,
  }
