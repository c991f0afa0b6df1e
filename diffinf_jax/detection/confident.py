"""Confident learning (Northcutt et al. 2021) through cleanlab.

Every function takes an `OutOfSample` (from `crossfit.cross_fit`), never a
bare probability matrix: fed the in-sample probabilities of a network that
memorised the noisy labels, confident learning agrees with almost every
label and finds nearly nothing. The type makes that mistake impossible to
make silently.
"""

from __future__ import annotations

import dataclasses

import cleanlab.count
import cleanlab.filter
import cleanlab.rank
import numpy as np

from diffinf_jax.detection import crossfit

RANK_METHODS = ("self_confidence", "normalized_margin",
                "confidence_weighted_entropy")


@dataclasses.dataclass(frozen=True)
class LabelIssues:
  """cleanlab's verdict on the assigned labels.

  Attributes:
    mask: [N] bool, cleanlab.filter.find_label_issues (prune_by_noise_rate).
    num_issues: mask.sum(): cleanlab's estimate of the number of wrong labels.
    joint: [K, K] calibrated confident joint P(assigned = i, true = j)
      (cleanlab.count.estimate_joint).
    noise_rate: 1 - trace(joint): estimated fraction of wrong labels.
  """
  mask: np.ndarray
  num_issues: int
  joint: np.ndarray
  noise_rate: float


def _checked(labels: np.ndarray, oos: crossfit.OutOfSample) -> tuple:
  if not isinstance(oos, crossfit.OutOfSample):
    raise TypeError(
        "confident learning needs out-of-sample probabilities: pass the "
        "OutOfSample of crossfit.cross_fit, not a probability array (the "
        "in-sample probabilities of a network trained on these labels make "
        "cleanlab find almost nothing)")
  labels = np.asarray(labels, np.int64)
  if oos.probs.shape[0] != labels.shape[0]:
    raise ValueError(f"{labels.shape[0]} labels but {oos.probs.shape[0]} "
                     "rows of out-of-sample probabilities")
  return labels, oos.probs


def score(labels: np.ndarray, oos: crossfit.OutOfSample,
          method: str = "self_confidence") -> np.ndarray:
  """Suspicion score 1 - cleanlab label quality ([N], higher = suspicious).

  Args:
    labels: [N] int assigned labels.
    oos: cross-fitted probabilities [N, K].
    method: cleanlab.rank.get_label_quality_scores method (RANK_METHODS).

  Returns:
    [N] float64 in [0, 1].
  """
  if method not in RANK_METHODS:
    raise ValueError(f"detection.confident_learning.rank_method={method!r}: "
                     f"use one of {RANK_METHODS}")
  labels, probs = _checked(labels, oos)
  quality = cleanlab.rank.get_label_quality_scores(labels, probs,
                                                   method=method)
  return 1.0 - np.asarray(quality, np.float64)


def find_issues(labels: np.ndarray, oos: crossfit.OutOfSample) -> LabelIssues:
  """cleanlab's issue mask, its count and the confident-joint noise rate.

  Args:
    labels: [N] int assigned labels.
    oos: cross-fitted probabilities [N, K].

  Returns:
    `LabelIssues`.
  """
  labels, probs = _checked(labels, oos)
  # n_jobs=1: cleanlab would otherwise fork worker processes, which is slow
  # for small N and unsafe in a process that already runs JAX threads.
  mask = np.asarray(cleanlab.filter.find_label_issues(
      labels, probs, filter_by="prune_by_noise_rate", n_jobs=1), bool)
  joint = np.asarray(cleanlab.count.estimate_joint(labels, probs),
                     np.float64)
  return LabelIssues(mask=mask, num_issues=int(mask.sum()), joint=joint,
                     noise_rate=float(1.0 - np.trace(joint)))
