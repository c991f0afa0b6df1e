"""Detectors by name: dispatch, ensembles and the errors that name the keys."""

import numpy as np
import pytest

from diffinf_jax.detection import confident
from diffinf_jax.detection import crossfit
from diffinf_jax.detection import detectors
from diffinf_jax.detection import registry


def _inputs(**kw):
  probs = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.1, 0.9]])
  y = np.array([0, 0, 1, 1])
  base = dict(labels=y,
              per_checkpoint=np.array([[1.0, 4.0, 2.0, 0.5],
                                       [0.0, 1.0, 1.0, 0.5]]),
              head_features=np.ones((4, 3)), head_probs=probs, probs=probs,
              out_of_sample=crossfit.OutOfSample(
                  probs, np.array([0, 1, 0, 1], np.int32)))
  base.update(kw)
  return registry.Inputs(**base)


def test_compute_scores_matches_the_detectors():
  inp = _inputs(ensemble_members=("small_loss", "self_influence"))
  out = registry.compute_scores(list(registry.DETECTORS), inp)
  assert list(out) == list(registry.DETECTORS)
  np.testing.assert_allclose(out["self_influence"], [1.0, 5.0, 3.0, 1.0])
  np.testing.assert_allclose(out["small_loss"],
                             detectors.small_loss(inp.probs, inp.labels))
  np.testing.assert_allclose(
      out["confident_learning"],
      confident.score(inp.labels, inp.out_of_sample))
  np.testing.assert_allclose(out["last_layer"], detectors.last_layer(
      inp.head_features, inp.head_probs, inp.labels))
  np.testing.assert_allclose(out["ensemble"], detectors.ensemble(
      [out["small_loss"], out["self_influence"]]))


def test_unknown_detector_names_the_key():
  with pytest.raises(ValueError, match=r"detection\.detectors.*'tracin'"):
    registry.compute_scores(["small_loss", "tracin"], _inputs())


def test_ensemble_member_errors_name_their_key():
  with pytest.raises(ValueError, match=r"detection\.ensemble\.members.*'x'"):
    registry.compute_scores(["ensemble"], _inputs(ensemble_members=("x",)))
  with pytest.raises(ValueError, match=r"detection\.ensemble\.members"):
    registry.compute_scores(["ensemble"], _inputs(ensemble_members=()))


def test_missing_input_says_what_is_missing():
  with pytest.raises(ValueError, match="cross-fitted"):
    registry.compute_scores(["confident_learning"],
                            _inputs(out_of_sample=None))
