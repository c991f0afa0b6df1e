"""Flagged-set metrics and the binary AUROC."""

import numpy as np
import pytest
from sklearn import metrics as skm

from diffinf_jax.influence import detection


def test_binary_auroc_matches_sklearn_with_ties():
  rng = np.random.default_rng(0)
  labels = rng.random(200) < 0.3
  scores = np.round(rng.normal(size=200) + labels, 1)  # many ties
  assert detection.binary_auroc(labels, scores) == pytest.approx(
      skm.roc_auc_score(labels, scores), abs=1e-12)


def test_detection_metrics_counts():
  scores = np.array([9.0, 8.0, 7.0, 1.0, 0.5, 0.1, 0.2, 0.3, 0.4, 0.6])
  flipped = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 1], bool)
  m = detection.detection_metrics(scores, flipped, tau=0.3)
  assert m["num_flagged"] == 3
  assert m["precision"] == pytest.approx(2 / 3)
  assert m["recall"] == pytest.approx(2 / 3)
  assert m["random_precision"] == pytest.approx(0.3)
  assert 0.5 < m["auroc_flip"] <= 1.0


def test_write_detection_files(tmp_path):
  rng = np.random.default_rng(1)
  n = 40
  arrays = {"image": rng.uniform(-1, 1, (n, 8, 8, 3)).astype(np.float32),
            "label": rng.integers(0, 3, n), "clean_label": rng.integers(0, 3, n)}
  m = detection.write_detection(str(tmp_path), rng.random(n), arrays, 0.1, 6)
  for name in ("detection.json", "histograms.png", "top_flagged.png"):
    assert (tmp_path / name).stat().st_size > 0
  assert set(m) >= {"tau", "num_flagged", "precision", "recall", "auroc_flip",
                    "random_precision"}
  assert m["num_flagged"] == 4
