"""Flagged count (tau | auto) and the top-k mask."""

import numpy as np
import pytest

from diffinf_jax.detection import confident
from diffinf_jax.detection import flagging


def _issues(count, n=50):
  mask = np.zeros(n, bool)
  mask[:count] = True
  return confident.LabelIssues(mask=mask, num_issues=count,
                               joint=np.eye(2) / 2, noise_rate=count / n)


def test_tau_is_the_ceiling_of_the_fraction():
  assert flagging.num_flagged("tau", 1050, tau=0.1) == 105
  assert flagging.num_flagged("tau", 1051, tau=0.1) == 106
  assert flagging.num_flagged("tau", 7, tau=1.0) == 7


def test_auto_flags_the_estimated_number_of_issues():
  assert flagging.num_flagged("auto", 50, issues=_issues(13)) == 13


@pytest.mark.parametrize("kwargs, match", [
    (dict(rule="auto"), r"detection\.num_flagged=auto.*out-of-sample"),
    (dict(rule="auto", issues=np.ones(50, bool)),
     r"detection\.num_flagged=auto"),
    (dict(rule="top", tau=0.1), r"detection\.num_flagged='top'"),
    (dict(rule="tau", tau=0.0), r"detection\.tau=0\.0"),
    (dict(rule="tau"), r"detection\.tau=None"),
])
def test_errors_name_the_key(kwargs, match):
  with pytest.raises(ValueError, match=match):
    flagging.num_flagged(num_samples=50, **kwargs)


def test_flag_top_breaks_ties_by_position():
  s = np.array([0.2, 0.9, 0.5, 0.9, 0.5])
  assert flagging.flag_top(s, 3).tolist() == [False, True, True, True, False]
  assert not flagging.flag_top(s, 0).any()
  with pytest.raises(ValueError):
    flagging.flag_top(s, 6)
