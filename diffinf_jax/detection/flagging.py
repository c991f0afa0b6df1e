"""How many samples to flag, and which.

  tau   ceil(tau * N): the paper's fixed fraction (detection.tau)
  auto  cleanlab's estimate of the number of wrong labels, which needs
        out-of-sample probabilities (`confident.find_issues`)
"""

from __future__ import annotations

import math

import numpy as np

from diffinf_jax.detection import confident

RULES = ("tau", "auto")
RULE_KEY = "detection.num_flagged"


def num_flagged(rule: str, num_samples: int, *, tau: float | None = None,
                issues: confident.LabelIssues | None = None) -> int:
  """The size of the flagged set.

  Args:
    rule: `tau` or `auto`.
    num_samples: N.
    tau: for `tau`, the fraction in (0, 1].
    issues: for `auto`, cleanlab's verdict on out-of-sample probabilities.

  Returns:
    int in 0..N.

  Raises:
    ValueError: unknown rule, tau outside (0, 1], or `auto` without
      `issues` (each naming its config key).

  Example:
    >>> num_flagged("tau", 1050, tau=0.1)
    105
  """
  if rule == "tau":
    if tau is None or not 0.0 < float(tau) <= 1.0:
      raise ValueError(f"detection.tau={tau}: must be in (0, 1]")
    # round() first: 0.1 * 1050 is 105.00000000000001 in floating point.
    return min(math.ceil(round(float(tau) * num_samples, 9)),
               num_samples)
  if rule == "auto":
    if not isinstance(issues, confident.LabelIssues):
      raise ValueError(
          f"{RULE_KEY}=auto flags cleanlab's estimated number of wrong "
          "labels, which needs out-of-sample probabilities: enable "
          f"cross-fitting (detection.crossfit) or set {RULE_KEY}=tau")
    return min(int(issues.num_issues), num_samples)
  raise ValueError(f"{RULE_KEY}={rule!r}: use one of {RULES}")


def flag_top(score: np.ndarray, count: int) -> np.ndarray:
  """[N] bool mask of the `count` highest scores (ties: lower position first).

  Example:
    >>> flag_top(np.array([0.2, 0.9, 0.9, 0.1]), 2).tolist()
    [False, True, True, False]
  """
  score = np.asarray(score, np.float64)
  if not 0 <= count <= score.size:
    raise ValueError(f"cannot flag {count} of {score.size} samples")
  order = np.argsort(-score, kind="stable")
  mask = np.zeros(score.size, bool)
  mask[order[:count]] = True
  return mask
