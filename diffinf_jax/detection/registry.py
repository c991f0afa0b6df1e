"""Detectors by name: one entry point for the scores a config asks for.

The pipeline gathers the inputs it has (per-checkpoint TracIn scores, the
final model's probabilities and head features, cross-fitted probabilities)
and calls `compute_scores(names, inputs)`; a detector whose input is missing
raises an error naming it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from diffinf_jax.detection import confident
from diffinf_jax.detection import crossfit
from diffinf_jax.detection import detectors

DETECTORS = ("self_influence", "last_layer", "small_loss",
             "confident_learning", "ensemble")
NAMES_KEY = "detection.detectors"
ENSEMBLE_KEY = "detection.ensemble.members"


@dataclasses.dataclass
class Inputs:
  """What the detectors read; leave None what the run does not have.

  Attributes:
    labels: [N] int assigned labels.
    per_checkpoint: [C, N] lr_t-weighted TracIn scores (self_influence).
    selected_checkpoints: indices into C (None: all).
    head_features: [C, N, D] or [N, D] input of the last Dense (last_layer).
    head_probs: [C, N, K] or [N, K] softmax matching head_features.
    learning_rates: [C] lr_t for last_layer (None: all 1).
    probs: [N, K] softmax of the final noisy model (small_loss).
    out_of_sample: cross-fitted probabilities (confident_learning).
    rank_method: cleanlab ranking method for confident_learning.
    ensemble_members: detector names the ensemble averages.
    ensemble_weights: their weights (None: equal).
  """
  labels: np.ndarray
  per_checkpoint: np.ndarray | None = None
  selected_checkpoints: np.ndarray | None = None
  head_features: np.ndarray | None = None
  head_probs: np.ndarray | None = None
  learning_rates: Sequence[float] | None = None
  probs: np.ndarray | None = None
  out_of_sample: crossfit.OutOfSample | None = None
  rank_method: str = "self_confidence"
  ensemble_members: Sequence[str] = ()
  ensemble_weights: Sequence[float] | None = None


def check_names(names: Sequence[str], key: str = NAMES_KEY) -> None:
  """Raises ValueError naming `key` if any name is not a detector."""
  unknown = [n for n in names if n not in DETECTORS]
  if unknown:
    raise ValueError(f"{key}: unknown detector(s) {unknown}; use names from "
                     f"{DETECTORS}")


def _need(value, name: str, what: str):
  if value is None:
    raise ValueError(f"detector {name!r} needs {what}, which this run does "
                     f"not provide; remove it from {NAMES_KEY}")
  return value


def _single(name: str, inputs: Inputs) -> np.ndarray:
  if name == "self_influence":
    return detectors.self_influence(
        _need(inputs.per_checkpoint, name, "per-checkpoint TracIn scores"),
        inputs.selected_checkpoints)
  if name == "last_layer":
    return detectors.last_layer(
        _need(inputs.head_features, name, "the head features"),
        _need(inputs.head_probs, name, "the head probabilities"),
        inputs.labels, inputs.learning_rates)
  if name == "small_loss":
    return detectors.small_loss(
        _need(inputs.probs, name, "the final model's probabilities"),
        inputs.labels)
  if name == "confident_learning":
    return confident.score(
        inputs.labels,
        _need(inputs.out_of_sample, name,
              "cross-fitted (out-of-sample) probabilities"),
        inputs.rank_method)
  raise AssertionError(name)


def compute_scores(names: Sequence[str], inputs: Inputs
                   ) -> dict[str, np.ndarray]:
  """Suspicion score [N] (higher = more likely mislabeled) per detector.

  Args:
    names: detector names (DETECTORS); `ensemble` averages the ranks of
      `inputs.ensemble_members`.
    inputs: see `Inputs`.

  Returns:
    {name: [N] float64} in the order of `names`.

  Raises:
    ValueError: an unknown name (naming `detection.detectors` or
      `detection.ensemble.members`), an ensemble without members or
      containing itself, or a detector whose input is missing.
  """
  check_names(names)
  out = {}
  for name in names:
    if name == "ensemble":
      members = list(inputs.ensemble_members)
      check_names(members, ENSEMBLE_KEY)
      if not members or "ensemble" in members:
        raise ValueError(f"{ENSEMBLE_KEY}={members}: list the detectors to "
                         "average (not 'ensemble' itself)")
      out[name] = detectors.ensemble([_single(m, inputs) for m in members],
                                     inputs.ensemble_weights)
    else:
      out[name] = _single(name, inputs)
  return out
