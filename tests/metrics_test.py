"""Metric parity with scikit-learn (a test-only dependency)."""

import numpy as np
import pytest

from diffinf_jax import metrics

sklearn_metrics = pytest.importorskip("sklearn.metrics")


@pytest.mark.parametrize("seed,k,n", [(0, 3, 200), (1, 4, 157), (2, 4, 40),
                                      (3, 2, 64)])
def test_parity_with_sklearn(seed, k, n):
  rng = np.random.default_rng(seed)
  labels = np.concatenate([np.arange(k), rng.integers(0, k, n - k)])
  logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[labels] * rng.random(
      (n, 1))
  probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
  pred = probs.argmax(1)
  assert metrics.accuracy(labels, pred) == pytest.approx(
      sklearn_metrics.accuracy_score(labels, pred), abs=1e-12)
  sk_auc = (sklearn_metrics.roc_auc_score(labels, probs[:, 1]) if k == 2 else
            sklearn_metrics.roc_auc_score(labels, probs, multi_class="ovr",
                                          average="macro",
                                          labels=list(range(k))))
  if k == 2:  # OvR macro over two classes equals the binary AUROC
    assert metrics.binary_auroc(labels == 1, probs[:, 1]) == pytest.approx(
        sk_auc, abs=1e-6)
  else:
    assert metrics.auroc_macro_ovr(probs, labels, k) == pytest.approx(
        sk_auc, abs=1e-6)
  for w in (None, "linear", "quadratic"):
    assert metrics.cohen_kappa(labels, pred, k, w) == pytest.approx(
        sklearn_metrics.cohen_kappa_score(labels, pred, weights=w,
                                          labels=list(range(k))), abs=1e-6)
  np.testing.assert_array_equal(
      metrics.confusion_matrix(labels, pred, k),
      sklearn_metrics.confusion_matrix(labels, pred, labels=list(range(k))))


def test_auroc_with_ties_matches_sklearn():
  rng = np.random.default_rng(5)
  y = rng.integers(0, 2, 300).astype(bool)
  s = rng.integers(0, 5, 300).astype(float)  # many ties
  assert metrics.binary_auroc(y, s) == pytest.approx(
      sklearn_metrics.roc_auc_score(y, s), abs=1e-12)


def test_absent_class_is_explicit():
  probs = np.array([[0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1],
                    [0.1, 0.8, 0.1]])
  labels = np.array([0, 1, 0, 1])  # class 2 absent
  per = metrics.per_class_auroc(probs, labels, 3)
  assert np.isnan(per[2]) and per[0] == 1.0 and per[1] == 1.0
  assert metrics.auroc_macro_ovr(probs, labels, 3) == 1.0
  assert np.isnan(metrics.auroc_macro_ovr(probs, np.zeros(4, int), 3))


def test_report_rejects_nan_probs():
  with pytest.raises(ValueError, match="NaN"):
    metrics.classification_report(np.full((2, 3), np.nan), np.array([0, 1]), 3)
