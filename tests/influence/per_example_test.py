"""Exact per-example gradient norms against the vmap(grad) oracle."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffinf_jax.influence import layer_rules
from diffinf_jax.influence import per_example as pe
from tests.influence import influence_toy_models as toy

B = 5


def _batch(dtype=jnp.float32, size=8, mask=True):
  x = jax.random.normal(jax.random.key(1), (B, size, size, 3), dtype)
  batch = {"image": x, "label": jnp.array([0, 1, 2, 0, 1], jnp.int32)}
  if mask:
    batch["mask"] = jnp.array([True, True, False, True, True])
  return batch


def _compare(model, batch, tol, branch_rule="time"):
  variables = toy.init_with_stats(model, batch["image"])
  variables = jax.tree.map(lambda v: v.astype(batch["image"].dtype), variables)
  exact = pe.make_sq_norm_fn(model, per_layer=True,
                             branch_rule=branch_rule)(variables, batch)
  ref = pe.make_sq_norm_fn(model, method="vmap", per_layer=True,
                           vmap_chunk=2)(variables, batch)
  assert sorted(exact) == sorted(ref)  # every module with params, both ways
  for k in ref:
    e, r = np.asarray(exact[k]), np.asarray(ref[k])
    assert e.dtype == batch["image"].dtype
    np.testing.assert_array_equal(e[2], 0.0)  # the padding row
    assert np.all(r[[0, 1, 3, 4]] > 0), k
    rel = np.abs(e - r) / np.maximum(np.abs(r), 1e-30)
    assert rel.max() <= tol, (k, rel.max())
  return exact


MODELS = [toy.MLP(), toy.SmallCNN(), toy.NormNet(), toy.CustomNet()]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: type(m).__name__)
@pytest.mark.parametrize("branch", ["ghost", "materialize"])
def test_exact_matches_vmap_float32(model, branch):
  _compare(model, _batch(), 1e-3, branch)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: type(m).__name__)
def test_exact_matches_vmap_float64(model):
  with jax.enable_x64(True):
    for branch in ("ghost", "materialize"):
      _compare(model, _batch(jnp.float64), 1e-10, branch)


def test_dense_closed_form():
  # Linear model logits = W x + b, loss = CE: dL/dlogits = softmax - onehot,
  # grad_W = (p - y) x^T, grad_b = p - y, so ||.||^2 = ||p-y||^2 (||x||^2 + 1).
  model = nn.Dense(3)
  x = jax.random.normal(jax.random.key(2), (4, 6))
  labels = jnp.array([0, 2, 1, 1])
  variables = model.init(jax.random.key(0), x)
  got = pe.make_sq_norm_fn(model, apply_kwargs={})(
      variables, {"image": x, "label": labels})
  logits = model.apply(variables, x)
  r = jax.nn.softmax(logits) - jax.nn.one_hot(labels, 3)
  want = jnp.sum(r**2, -1) * (jnp.sum(x**2, -1) + 1.0)
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_chunk_and_batch_size_invariance():
  model = toy.SmallCNN()
  batch = _batch(mask=False)
  variables = toy.init_with_stats(model, batch["image"])
  fn = pe.make_sq_norm_fn(model)
  full = np.asarray(fn(variables, batch))
  parts = np.concatenate([
      np.asarray(fn(variables, jax.tree.map(lambda a: a[i:i + 2], batch)))
      for i in range(0, B, 2)])
  np.testing.assert_allclose(full, parts, rtol=1e-5)
  for chunk in (1, 3, B):
    ref = pe.make_sq_norm_fn(model, method="vmap", vmap_chunk=chunk)(
        variables, batch)
    np.testing.assert_allclose(ref, full, rtol=1e-4)


def test_last_layer_is_final_dense_only():
  model = toy.SmallCNN()
  batch = _batch()
  variables = toy.init_with_stats(model, batch["image"])
  last = pe.make_sq_norm_fn(model, method="last_layer")(variables, batch)
  per = pe.make_sq_norm_fn(model, per_layer=True)(variables, batch)
  np.testing.assert_allclose(last, per["Dense_1"], rtol=1e-6)
  assert last[2] == 0.0


def test_branch_choice_follows_cost():
  assert layer_rules.choose_branch(1024, 576, 64, "time") == "materialize"
  assert layer_rules.choose_branch(64, 1152, 256, "time") == "ghost"
  # ResNet-18 layer2: the two rules disagree (reference table, 2.6).
  assert layer_rules.choose_branch(256, 1152, 128, "space") == "ghost"
  assert layer_rules.choose_branch(256, 1152, 128, "time") == "materialize"


def test_patches_match_lax_for_strided_padded_conv():
  x = jax.random.normal(jax.random.key(3), (2, 7, 6, 3))
  spec = layer_rules.ConvSpec((3, 2), (2, 1), ((1, 2), (0, 1)), (1, 1), (1, 2),
                              1, False)
  p = layer_rules.conv_patches(x, spec)
  ref = jax.lax.conv_general_dilated_patches(
      x, (3, 2), (2, 1), ((1, 2), (0, 1)), rhs_dilation=(1, 2),
      dimension_numbers=("NHWC", "HWIO", "NHWC"))
  assert p.shape[:3] == ref.shape[:3]
  # Same multiset of patch entries per output pixel (layouts differ).
  np.testing.assert_allclose(np.sort(p.reshape(*p.shape[:3], -1), -1),
                             np.sort(ref, -1), rtol=1e-6)


def test_training_mode_batchnorm_raises():
  model = toy.SmallCNN()
  batch = _batch()
  variables = toy.init_with_stats(model, batch["image"])
  with pytest.raises(ValueError, match="batch statistics"):
    pe.make_sq_norm_fn(model, apply_kwargs={"train": True})(variables, batch)


def test_uncovered_layer_raises_naming_module():
  model = toy.CustomNet()
  batch = _batch()
  variables = toy.init_with_stats(model, batch["image"])
  with pytest.raises(ValueError, match="Scaled_0"):
    pe.make_sq_norm_fn(model, allow_fallback=False)(variables, batch)


def test_shared_module_raises():
  model = toy.SharedNet()
  batch = _batch()
  variables = model.init(jax.random.key(0), batch["image"])
  with pytest.raises(ValueError, match="more than once"):
    pe.make_sq_norm_fn(model)(variables, batch)


def test_unused_parameter_raises():
  model = toy.MLP()
  batch = _batch()
  variables = model.init(jax.random.key(0), batch["image"])
  params = dict(variables["params"])
  params["Extra"] = {"kernel": jnp.ones((2, 2))}
  with pytest.raises(ValueError, match="Extra/kernel"):
    pe.make_sq_norm_fn(model)({"params": params}, batch)


@pytest.mark.parametrize("group_width", [1, 10**6])
@pytest.mark.parametrize("one_device", [False, True])
def test_chunked_reduction_matches_batch_wide(monkeypatch, group_width,
                                              one_device):
  # Norms are reduced a few examples at a time (lax.map over chunks sized to
  # a cache budget); a tiny budget forces one example per chunk. Kernel
  # offsets are grouped by width: 1 = one GEMM per offset, 10**6 = all
  # offsets stacked into whole patches. Chunks are strided over the batch
  # with several devices, contiguous with one.
  model = toy.SmallCNN()
  batch = _batch()
  batch["image"] = jnp.concatenate([batch["image"]] * 2)[:6]
  batch["label"] = jnp.concatenate([batch["label"]] * 2)[:6]
  batch["mask"] = jnp.concatenate([batch["mask"]] * 2)[:6]
  variables = toy.init_with_stats(model, batch["image"])
  whole = pe.make_sq_norm_fn(model, per_layer=True)(variables, batch)
  monkeypatch.setattr(layer_rules, "OFFSET_GROUP_WIDTH", group_width)
  monkeypatch.setattr(layer_rules, "CHUNK_BYTES", 1)
  if one_device:
    monkeypatch.setattr(layer_rules.jax, "device_count", lambda: 1)
  assert layer_rules.chunk_size(6, 1e9) == 1
  assert layer_rules.chunk_size(6, 1e9, budget=int(3e9), devices=1) == 3
  assert layer_rules.chunk_size(64, 1e9, budget=int(2e9), devices=8) == 16
  assert layer_rules.chunk_size(6, 1e9, devices=4) == 1  # 6 % 4: unsharded
  chunked = pe.make_sq_norm_fn(model, per_layer=True)(variables, batch)
  for k in whole:
    np.testing.assert_allclose(chunked[k], whole[k], rtol=1e-5, err_msg=k)


@pytest.mark.slow
def test_resnet18_exact_matches_vmap_float64():
  from diffinf_jax.models import resnet
  with jax.enable_x64(True):
    model = resnet.ResNet18(num_classes=3, width_multiplier=0.125,
                            stem="imagenet", head_hidden=8,
                            dtype=jnp.float64)
    batch = _batch(jnp.float64, size=16)
    variables = toy.init_with_stats(model, batch["image"])
    variables = jax.tree.map(lambda v: v.astype(jnp.float64), variables)
    exact = pe.make_sq_norm_fn(model)(variables, batch)
    ref = pe.make_sq_norm_fn(model, method="vmap", vmap_chunk=B)(variables,
                                                                  batch)
    assert exact.dtype == jnp.float64 and exact[2] == 0.0
    keep = np.array([0, 1, 3, 4])
    np.testing.assert_allclose(np.asarray(exact)[keep], np.asarray(ref)[keep],
                               rtol=1e-10)


# --- the user-model contract (docs/influence_api.md) ---------------------


class _NoTrainArg(nn.Module):
  """No train argument: called with no keyword at all."""

  @nn.compact
  def __call__(self, x):
    return nn.Dense(3)(x)


class _DictOutput(nn.Module):
  @nn.compact
  def __call__(self, x, *, deterministic=True):
    return {"logits": nn.Dense(3)(x), "features": x}


class _SubclassedDense(nn.Module):
  @nn.compact
  def __call__(self, x, train=False):
    return toy.PlainSubDense(3)(x)


class _OverridingSubclass(nn.Module):
  @nn.compact
  def __call__(self, x, train=False):
    return toy.ScaledSubDense(3)(x)  # logits = 2 (W x + b)


@pytest.mark.parametrize("model,scale", [
    (_NoTrainArg(), 1.0), (_DictOutput(), 1.0), (_SubclassedDense(), 1.0),
    (_OverridingSubclass(), 2.0)], ids=lambda m: type(m).__name__)
def test_user_models_work(model, scale):
  # Linear logits s (W x + b), CE: dL/dW = s (p - y) x^T, dL/db = s (p - y),
  # so ||.||^2 = s^2 ||p - y||^2 (||x||^2 + 1).
  x = jax.random.normal(jax.random.key(2), (4, 6))
  labels = jnp.array([0, 2, 1, 1])
  batch = {"image": x, "label": labels}
  variables = model.init(jax.random.key(0), x)
  plan = pe.describe(model, variables, batch)
  assert [p["rule"] for p in plan] == ["dense"]  # the exact Dense rule
  got = pe.make_sq_norm_fn(model)(variables, batch)
  last = pe.make_sq_norm_fn(model, method="last_layer")(variables, batch)
  r = jax.nn.softmax(pe.logits_of(model.apply(variables, x))) - \
      jax.nn.one_hot(labels, 3)
  want = scale**2 * jnp.sum(r**2, -1) * (jnp.sum(x**2, -1) + 1.0)
  np.testing.assert_allclose(got, want, rtol=1e-5)
  np.testing.assert_allclose(last, want, rtol=1e-5)


def test_default_apply_kwargs_follow_the_signature():
  assert pe.default_apply_kwargs(_NoTrainArg()) == {}
  assert pe.default_apply_kwargs(_DictOutput()) == {"deterministic": True}
  assert pe.default_apply_kwargs(toy.SmallCNN()) == {"train": False}


class _BatchStatsNet(nn.Module):
  """A BatchNorm hard-wired to batch statistics."""

  @nn.compact
  def __call__(self, x, train=False):
    return nn.Dense(3)(nn.BatchNorm(use_running_average=False)(x))


class _TiedEmbedding(nn.Module):
  @nn.compact
  def __call__(self, ids):
    embed = nn.Embed(5, 4)
    return embed.attend(jnp.mean(embed(ids), axis=1))


class _BroadcastPositions(nn.Module):
  """Looks position embeddings up once, without the batch axis."""

  @nn.compact
  def __call__(self, ids):
    x = nn.Embed(5, 4)(ids) + nn.Embed(3, 4)(jnp.arange(ids.shape[1]))
    return nn.Dense(5)(jnp.mean(x, axis=1))


class _BatchDims(nn.Module):
  @nn.compact
  def __call__(self, x):
    return nn.DenseGeneral(3, batch_dims=(0,))(x)


class _NoDense(nn.Module):
  @nn.compact
  def __call__(self, x):
    return jnp.mean(nn.Conv(3, (3, 3))(x), axis=(1, 2))


_IDS = jnp.array([[0, 1, 2], [3, 4, 0]])
_X = jnp.ones((2, 4))


@pytest.mark.parametrize("model,batch,kwargs,match", [
    (_BatchStatsNet(), {"image": _X}, {}, "batch statistics"),
    (toy.SmallCNN(), None, {"apply_kwargs": {"train": True}},
     "batch statistics"),
    (_NoTrainArg(), {"image": _X}, {"apply_kwargs": {"train": False}},
     "apply_kwargs"),
    (_DictOutput(), {"image": _X},
     {"loss_fn": lambda o, b: pe.softmax_xent(o["features"], b).mean()},
     "one loss per example"),
    (_TiedEmbedding(), {"tokens": _IDS}, {"input_key": "tokens"},
     "more than once"),
    (_BroadcastPositions(), {"tokens": _IDS}, {"input_key": "tokens"},
     "lacks the leading example axis"),
    (_BatchDims(), {"image": jnp.ones((2, 3, 4))}, {}, "batch_dims"),
    (_NoTrainArg(), {"x": _X}, {}, "input_key"),
], ids=["bn_batch_stats", "bn_train_flag", "bad_apply_kwargs",
        "batch_mean_loss", "tied_weights", "broadcast_positions",
        "batch_dims", "missing_input"])
def test_contract_errors_name_the_fix(model, batch, kwargs, match):
  # Each case raises from discovery (a trace: no compute), naming the fix.
  batch = {"label": jnp.zeros(2, jnp.int32), **(batch or _batch())}
  kwargs = dict(kwargs)
  loss_fn = kwargs.pop("loss_fn", pe.softmax_xent)
  inputs = batch.get(kwargs.get("input_key", "image"), _X)
  variables = toy.random_variables(model, inputs)
  with pytest.raises((ValueError, TypeError), match=match):
    pe.discover(model, variables, batch, loss_fn=loss_fn, **kwargs)


def test_dict_output_without_logits_names_loss_fn():
  with pytest.raises(ValueError, match="no 'logits'.*loss_fn"):
    pe.logits_of({"features": jnp.ones((2, 3))})


def test_last_layer_skips_a_norm_after_the_last_dense():
  class Head(nn.Module):  # an ArcFace-style head: Dense, then a norm
    @nn.compact
    def __call__(self, x):
      h = nn.relu(nn.Dense(5, name="hidden")(x))
      return nn.LayerNorm(name="norm")(nn.Dense(3, name="out")(h))
  model = Head()
  batch = {"image": jax.random.normal(jax.random.key(3), (4, 6)),
           "label": jnp.array([0, 1, 2, 0])}
  variables = toy.random_variables(model, batch["image"])
  last = pe.make_sq_norm_fn(model, method="last_layer")(variables, batch)
  per = pe.make_sq_norm_fn(model, per_layer=True)(variables, batch)
  np.testing.assert_allclose(last, per["out"], rtol=1e-6)
  named = pe.make_sq_norm_fn(model, method="last_layer",
                             last_layer="norm")(variables, batch)
  np.testing.assert_allclose(named, per["norm"], rtol=1e-6)
  with pytest.raises(ValueError, match="no Dense"):
    model = _NoDense()
    pe.make_sq_norm_fn(model, method="last_layer")(
        toy.random_variables(model, _batch()["image"]), _batch())
