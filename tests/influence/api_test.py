"""The one entry point: every accepted checkpoint form, breakdowns, errors."""

import flax.linen as nn
import jax
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

from diffinf_jax.influence import api
from diffinf_jax.influence import per_example as pe
from diffinf_jax.influence import tracin
from tests.influence import influence_toy_models as toy

N = 7  # not a multiple of the batch size: the last batch is padded


class UserNet(nn.Module):
  """A user's model: no train argument, a dict output."""

  @nn.compact
  def __call__(self, x):
    h = nn.relu(nn.Dense(6)(x))
    return {"logits": nn.Dense(3)(h), "features": h}


def _data():
  r = np.random.default_rng(0)
  return {"image": r.normal(size=(N, 5)).astype(np.float32),
          "label": r.integers(0, 3, N).astype(np.int32),
          "index": np.arange(100, 100 + N)}


def _train(model, data, steps):
  """A user's training loop: SGD, parameters after each step."""
  params = toy.random_variables(model, data["image"][:1])["params"]
  tx = optax.sgd(0.5)
  opt = tx.init(params)
  out = []
  for _ in range(steps):
    grads = jax.grad(lambda p: pe.softmax_xent(
        model.apply({"params": p}, data["image"]), data).mean())(params)
    updates, opt = tx.update(grads, opt)
    params = optax.apply_updates(params, updates)
    out.append((params, opt))
  return out


def _hand_sum(model, data, params_list, lrs):
  """sum_t lr_t ||g_t||^2 from the vmap(grad) reference."""
  fn = pe.make_sq_norm_fn(model, method="vmap")
  batch = {k: data[k] for k in ("image", "label")}
  return sum(lr * np.asarray(fn({"params": p}, batch), np.float64)
             for p, lr in zip(params_list, lrs))


def test_user_orbax_loop_needs_explicit_learning_rates(tmp_path):
  model, data = UserNet(), _data()
  states = _train(model, data, 2)
  mngr = ocp.CheckpointManager(str(tmp_path / "ckpt"))
  for step, (params, opt) in enumerate(states):
    mngr.save(step * 10, args=ocp.args.StandardSave(
        {"params": params, "opt_state": opt, "step": step}))
  mngr.wait_until_finished()
  mngr.close()
  with pytest.raises(ValueError, match="store no learning rate.*"
                     "learning_rates=.*never assumes 1"):
    api.self_influence(model, str(tmp_path / "ckpt"), data)
  lrs = [0.5, 0.25]
  result = api.self_influence(model, str(tmp_path / "ckpt"), data,
                              learning_rates=lrs, batch_size=4,
                              per_layer=True)
  want = _hand_sum(model, data, [p for p, _ in states], lrs)
  np.testing.assert_allclose(result.scores, want, rtol=1e-5)
  assert result.steps == [0, 10] and result.learning_rates == lrs
  np.testing.assert_array_equal(result.index, data["index"])
  np.testing.assert_allclose(result.per_checkpoint.sum(0), result.scores,
                             rtol=1e-12)
  np.testing.assert_allclose(sum(result.per_layer.values()), result.scores,
                             rtol=1e-6)
  assert sorted(result.per_layer) == ["Dense_0", "Dense_1"]
  np.testing.assert_array_equal(api.top_k(result, 2),
                                data["index"][np.argsort(-want)[:2]])


def test_learning_rates_from_json_and_custom_metadata(tmp_path):
  model, data = UserNet(), _data()
  states = _train(model, data, 2)
  mngr = ocp.CheckpointManager(str(tmp_path / "a"))  # a JSON item "meta"
  mngr.save(1, args=ocp.args.Composite(
      state=ocp.args.StandardSave({"params": states[0][0]}),
      meta=ocp.args.JsonSave({"lr": 0.3})))
  mngr.wait_until_finished()
  mngr.close()
  mngr = ocp.CheckpointManager(str(tmp_path / "b"))  # step custom metadata
  mngr.save(2, args=ocp.args.StandardSave({"params": states[1][0]}),
            custom_metadata={"learning_rate": 0.2})
  mngr.wait_until_finished()
  mngr.close()
  a = api.load_checkpoints(str(tmp_path / "a"), {"params": states[0][0]})
  b = api.load_checkpoints(str(tmp_path / "b"), {"params": states[0][0]})
  assert [(c.step, c.learning_rate) for c in a + b] == [(1, 0.3), (2, 0.2)]
  result = api.self_influence(model, a + b, data)
  want = _hand_sum(model, data, [s[0] for s in states], [0.3, 0.2])
  np.testing.assert_allclose(result.scores, want, rtol=1e-5)


def test_project_checkpoints_carry_learning_rates(tmp_path):
  from diffinf_jax import checkpointing
  model, data = UserNet(), _data()
  states = _train(model, data, 2)
  for step, (params, _) in enumerate(states):
    checkpointing.save(str(tmp_path), step, {"params": params}, {"step": 0},
                       {"epoch": step, "learning_rate": 0.1 * (step + 1)})
  result = api.self_influence(model, str(tmp_path), data, steps=[1])
  assert result.learning_rates == [pytest.approx(0.2)]
  want = _hand_sum(model, data, [states[1][0]], [0.2])
  np.testing.assert_allclose(result.scores, want, rtol=1e-5)


def test_variables_list_and_batch_iterable():
  model = toy.SmallCNN()  # BatchNorm: variables carry batch_stats
  r = np.random.default_rng(1)
  x = r.normal(size=(N, 8, 8, 3)).astype(np.float32)
  y = r.integers(0, 3, N).astype(np.int32)
  v1 = toy.random_variables(model, x[:1], seed=1)
  v2 = toy.random_variables(model, x[:1], seed=2)
  batches = [{"image": x[:3], "label": y[:3]}, {"image": x[3:], "label": y[3:]}]
  pairs = api.self_influence(model, [(v1, 0.5), (v2, 2.0)], batches,
                             batch_size=4)
  listed = api.self_influence(model, [v1, v2], {"image": x, "label": y},
                              learning_rates=[0.5, 2.0], batch_size=8,
                              method="last_layer")
  fn = pe.make_sq_norm_fn(model)
  want = (0.5 * np.asarray(fn(v1, {"image": x, "label": y}), np.float64)
          + 2.0 * np.asarray(fn(v2, {"image": x, "label": y}), np.float64))
  np.testing.assert_allclose(pairs.scores, want, rtol=1e-5)
  np.testing.assert_array_equal(pairs.index, np.arange(N))
  assert [p["path"] for p in listed.plan] == ["Dense_1"]
  assert np.all(listed.scores < pairs.scores)


class _Broken(nn.Module):
  @nn.compact
  def __call__(self, x, train=False):
    return nn.Dense(3)(nn.BatchNorm(use_running_average=False)(x))


@pytest.mark.parametrize("model,kwargs,match", [
    (_Broken(), {}, "batch statistics"),
    (UserNet(), {"apply_kwargs": {"train": False}}, "apply_kwargs"),
    (UserNet(), {"loss_fn": lambda o, b: pe.softmax_xent(o, b).mean()},
     "one loss per example"),
    (UserNet(), {"input_key": "pixels"}, "input_key"),
    (UserNet(), {"learning_rates": [0.1, 0.2]}, "2 values for 1"),
    (UserNet(), {"learning_rates": [float("nan")]}, "finite and > 0"),
], ids=["bn", "apply_kwargs", "mean_loss", "input_key", "lr_count",
        "lr_nan"])
def test_errors_come_before_any_checkpoint_is_loaded(model, kwargs, match):
  data = _data()
  loads = []

  def load():
    loads.append(1)
    return toy.random_variables(model, data["image"][:1])
  with pytest.raises((ValueError, TypeError), match=match):
    api.self_influence(model, [tracin.Checkpoint(0, None, load)], data,
                       **{"learning_rates": [0.1], **kwargs})
  assert not loads


def test_mismatched_variables_are_named():
  model, data = UserNet(), _data()
  other = toy.random_variables(toy.MLP(), data["image"][:1])
  with pytest.raises(ValueError, match="do not match the model"):
    api.self_influence(model, [(other, 0.1)], data)


def test_batches_split_over_a_device_mesh():
  model, data = UserNet(), _data()
  variables = toy.random_variables(model, data["image"][:1])
  mesh = jax.sharding.Mesh(np.array(jax.devices()), ("data",))
  one = api.self_influence(model, [(variables, 0.1)], data, batch_size=4)
  split = api.self_influence(model, [(variables, 0.1)], data, batch_size=4,
                             mesh=mesh)  # batch rounded up to the devices
  np.testing.assert_allclose(split.scores, one.scores, rtol=1e-5)
