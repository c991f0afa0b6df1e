"""Co-teaching and ELR: core rules on toys, and one tiny training run each."""

import os

import jax.numpy as jnp
import numpy as np
import pytest

from diffinf_jax import configuration
from diffinf_jax import data
from diffinf_jax import evaluation
from diffinf_jax.training import methods
from diffinf_jax.training.methods import coteaching
from diffinf_jax.training.methods import elr


def test_coteaching_exchanges_small_loss_selections():
  loss_a = jnp.array([0.1, 0.9, 0.2, 0.8, 0.5, 0.3])
  loss_b = jnp.array([0.9, 0.1, 0.8, 0.2, 0.3, 0.5])
  valid = jnp.array([True] * 5 + [False])
  train_a, train_b = coteaching.exchange_masks(loss_a, loss_b, valid, 0.6)
  # R = 0.6 of 5 valid rows = 3 rows each, chosen by the OTHER network.
  np.testing.assert_array_equal(np.asarray(train_a),
                                [False, True, False, True, True, False])
  np.testing.assert_array_equal(np.asarray(train_b),
                                [True, False, True, False, True, False])


def test_elr_target_update_and_loss():
  targets = jnp.zeros((4, 2)).at[1].set(jnp.array([0.5, 0.5]))
  probs = jnp.array([[0.8, 0.2], [0.6, 0.4], [0.3, 0.7]])
  rows = jnp.array([1, 2, 0])
  valid = jnp.array([True, True, False])
  new = np.asarray(elr.update_targets(targets, rows, probs, valid, beta=0.7))
  np.testing.assert_allclose(new[1], 0.7 * 0.5 + 0.3 * np.array([0.8, 0.2]))
  np.testing.assert_allclose(new[2], 0.3 * np.array([0.6, 0.4]))
  np.testing.assert_array_equal(new[0], 0.0)  # the padding row wrote nothing
  logits = jnp.log(jnp.array([[0.8, 0.2]]))
  t = jnp.array([[0.9, 0.1]])
  per = float(elr.elr_per_example(logits, jnp.array([0]), t, lam=3.0)[0])
  assert per == pytest.approx(-np.log(0.8) + 3 * np.log(1 - 0.74), rel=1e-5)


@pytest.mark.parametrize("method", ["coteaching", "elr", "small_loss",
                                    "proselflc"])
def test_tiny_training_run_is_evaluable(method, tmp_path, monkeypatch):
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
  w = str(tmp_path / "w")
  c = configuration.get_config("configs/demo.py:tiny", ["train.num_epochs=1"])
  ds = data.get_dataset(c, w)
  methods.train_method(method, c, w, ds, out_subdir="m/train")
  assert os.listdir(os.path.join(w, "m", "train", "checkpoints"))
  m = evaluation.evaluate(c, w, ds, train_subdir="m/train", out_subdir="m/eval")
  assert 0.0 <= m["accuracy"] <= 1.0


def test_elr_plus_mixup_and_weight_averaging():
  import jax
  from diffinf_jax.training.methods import elr_plus
  lam, perm = elr_plus.mixup_params(jax.random.key(0), 6)
  assert 0.5 <= float(lam) <= 1.0
  assert sorted(np.asarray(perm).tolist()) == list(range(6))
  a = jnp.arange(6.0)[:, None] * jnp.ones((6, 2))
  np.testing.assert_allclose(np.asarray(elr_plus.mix(a, lam, perm)),
                             float(lam) * np.asarray(a) + (1 - float(lam)) *
                             np.asarray(a)[np.asarray(perm)], rtol=1e-6)
  ema = {"w": jnp.zeros(2)}
  new = elr_plus.ema_update(ema, {"w": jnp.ones(2)}, decay=0.9)
  np.testing.assert_allclose(np.asarray(new["w"]), 0.1, rtol=1e-6)


def test_elr_plus_tiny_run(tmp_path, monkeypatch):
  test_tiny_training_run_is_evaluable("elr_plus", tmp_path, monkeypatch)
