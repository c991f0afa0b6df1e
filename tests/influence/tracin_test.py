"""TracIn self-influence: hand sum, resume, device-count invariance, errors."""

import jax
import numpy as np
import optax
import pytest

from diffinf_jax import chunks
from diffinf_jax import sharding
from diffinf_jax.influence import per_example as pe
from diffinf_jax.influence import tracin
from tests.influence import influence_toy_models as toy

N = 13  # not a multiple of the batch size or the device count


def _setup():
  rng = np.random.default_rng(0)
  arrays = {"image": rng.normal(size=(N, 4, 4, 3)).astype(np.float32),
            "label": rng.integers(0, 3, N).astype(np.int32),
            "index": (100 + np.arange(N)).astype(np.int32)}
  model = toy.MLP()
  v1 = model.init(jax.random.key(1), arrays["image"][:1])
  v2 = model.init(jax.random.key(2), arrays["image"][:1])
  return model, arrays, [v1, v2]


def _hand(model, variables, arrays):
  def loss(p, x, y):
    logits = model.apply({"params": p}, x[None])
    return optax.softmax_cross_entropy_with_integer_labels(logits, y[None])[0]
  out = []
  for x, y in zip(arrays["image"], arrays["label"]):
    g = jax.grad(loss)(variables["params"], x, y)
    out.append(sum(float(np.sum(np.asarray(t, np.float64) ** 2))
                   for t in jax.tree.leaves(g)))
  return np.array(out)


def _run(model, arrays, variables, lrs, tmp, mesh=None, loads=None):
  fn = pe.make_sq_norm_fn(model)
  cks = [tracin.Checkpoint(10 * (t + 1), lr,
                           (loads[t] if loads else (lambda v=v: v)))
         for t, (v, lr) in enumerate(zip(variables, lrs))]
  stores = [chunks.ChunkStore(str(tmp / f"ckpt_{c.step}"),
                              tracin.fingerprint(work="w", step=c.step))
            for c in cks]
  return tracin.self_influence(fn, cks, arrays, batch_size=4, chunk_size=5,
                               stores=stores, mesh=mesh)


def test_two_checkpoints_equal_hand_sum(tmp_path):
  model, arrays, variables = _setup()
  lrs = [0.5, 0.125]
  res = _run(model, arrays, variables, lrs, tmp_path)
  want = sum(lr * _hand(model, v, arrays) for v, lr in zip(variables, lrs))
  assert res["scores"].dtype == np.float64
  np.testing.assert_allclose(res["scores"], want, rtol=1e-5)
  np.testing.assert_allclose(res["per_checkpoint"].sum(0), res["scores"])


def test_resume_after_interruption_gives_identical_scores(tmp_path):
  model, arrays, variables = _setup()
  full = _run(model, arrays, variables, [1.0, 2.0], tmp_path / "a")

  def boom():
    raise RuntimeError("killed")
  with pytest.raises(RuntimeError):
    _run(model, arrays, variables, [1.0, 2.0], tmp_path / "b",
         loads=[lambda: variables[0], boom])
  calls = []

  def first():
    calls.append(1)
    return variables[0]
  res = _run(model, arrays, variables, [1.0, 2.0], tmp_path / "b",
             loads=[first, lambda: variables[1]])
  assert not calls  # checkpoint 1 was complete: never loaded again
  np.testing.assert_array_equal(res["scores"], full["scores"])


def test_one_vs_eight_devices(tmp_path):
  model, arrays, variables = _setup()
  assert jax.device_count() == 8
  one = _run(model, arrays, variables, [1.0, 1.0], tmp_path / "1",
             mesh=sharding.data_mesh(jax.devices()[:1]))
  eight = _run(model, arrays, variables, [1.0, 1.0], tmp_path / "8",
               mesh=sharding.data_mesh())
  np.testing.assert_allclose(eight["scores"], one["scores"], rtol=1e-6)


def test_nan_loss_raises_naming_indices(tmp_path):
  model, arrays, variables = _setup()
  arrays = dict(arrays)
  arrays["image"] = arrays["image"].copy()
  arrays["image"][3] = np.nan
  with pytest.raises(ValueError, match="103"):
    _run(model, arrays, variables, [1.0, 1.0], tmp_path)
  assert not list(tmp_path.glob("**/chunk_00000.npz"))


def test_learning_rate_validation():
  assert tracin.validate_learning_rates([1, 2], [0.1, 0.2]) == [0.1, 0.2]
  assert tracin.validate_learning_rates([1, 2], [None, None], (1.0, 2.0)) == [
      1.0, 2.0]
  with pytest.raises(ValueError, match="no learning rate"):
    tracin.validate_learning_rates([1, 2], [0.1, None])
  with pytest.raises(ValueError, match="3 values for 2"):
    tracin.validate_learning_rates([1, 2], [0.1, 0.1], (1.0, 2.0, 3.0))
  with pytest.raises(ValueError, match="finite and > 0"):
    tracin.validate_learning_rates([1, 2], [0.1, float("nan")])
