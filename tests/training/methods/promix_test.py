"""ProMix: class-wise progressive selection counts, matched high confidence."""

import numpy as np
import pytest

from diffinf_jax.training.methods import promix


def test_classwise_selection_counts():
  labels = np.array([0] * 10 + [1] * 4 + [2] * 6)
  losses = np.random.default_rng(0).random(20)
  keep = promix.classwise_selection(losses, labels, 3, fraction=0.5)
  # k = ceil(0.5 * min(10, 4, 6)) = 2 per class.
  assert [int(keep[labels == c].sum()) for c in range(3)] == [2, 2, 2]
  for c in range(3):
    idx = np.flatnonzero(labels == c)
    chosen = losses[idx][keep[idx]]
    assert chosen.max() <= np.sort(losses[idx])[1] + 1e-12
  keep_all = promix.classwise_selection(losses, labels, 3, fraction=1.0)
  assert [int(keep_all[labels == c].sum()) for c in range(3)] == [4, 4, 4]


def test_progressive_ratio_and_matched_confidence():
  assert promix.rho(0.0) == pytest.approx(promix.RHO_START)
  assert promix.rho(1.0) == pytest.approx(promix.RHO_END)
  probs = np.array([[0.97, 0.03], [0.6, 0.4], [0.02, 0.98], [0.99, 0.01]])
  labels = np.array([0, 0, 1, 1])
  np.testing.assert_array_equal(
      promix.matched_high_confidence(probs, labels, tau=0.95),
      [True, False, True, False])


def test_promix_tiny_run(tmp_path, monkeypatch):
  import os
  from diffinf_jax import configuration
  from diffinf_jax import data
  from diffinf_jax import evaluation
  from diffinf_jax.training import methods
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
  w = str(tmp_path / "w")
  c = configuration.get_config("configs/demo.py:tiny", ["train.num_epochs=2"])
  ds = data.get_dataset(c, w)
  methods.train_method("promix", c, w, ds, out_subdir="m/train")
  assert os.listdir(os.path.join(w, "m", "train", "checkpoints"))
  m = evaluation.evaluate(c, w, ds, train_subdir="m/train", out_subdir="m/eval")
  assert 0.0 <= m["accuracy"] <= 1.0
