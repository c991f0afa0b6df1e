"""The influence stage's scores.csv."""

import numpy as np

from diffinf_jax.pipeline import influence


def test_scores_csv_columns_and_flip_flag():
  text = influence.scores_csv(np.array([7, 8]), np.array([0.5, 0.25]),
                              np.array([1, 2]), np.array([1, 0]))
  lines = text.splitlines()
  assert lines[0] == "index,score,label,clean_label,flipped"
  assert lines[1:] == ["7,0.5,1,1,0", "8,0.25,2,0,1"]
