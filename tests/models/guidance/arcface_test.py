"""ArcFace IResNet port: parity with the insightface fixture, presets, errors."""

import os

import jax
import numpy as np
import pytest

from diffinf_jax.convert import arcface as convert_arcface
from diffinf_jax.models.guidance import arcface

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures",
                        "arcface_iresnet")


@pytest.fixture(scope="module")
def fixture():
  sd = dict(np.load(os.path.join(FIXTURES,
                                 "arcface_iresnet_public_state_dict.npz")))
  ref = dict(np.load(os.path.join(FIXTURES, "arcface_iresnet_public.npz")))
  return sd, ref


def test_parity_with_insightface_fixture(fixture):
  sd, ref = fixture
  variables, cfg, src_dtype, _ = convert_arcface.convert_state_dict(sd)
  assert src_dtype == "float16"
  assert cfg.layers == (1, 1, 1, 1) and cfg.num_features == 128
  assert cfg.input_size == (32, 32)
  x = ref["x"].transpose(0, 2, 3, 1)
  with jax.default_matmul_precision("highest"):
    emb, state = arcface.IResNet(cfg).apply(variables, x,
                                            mutable=["intermediates"])
  emb = np.asarray(emb)
  np.testing.assert_allclose(emb, ref["embedding"], rtol=0, atol=2e-4)
  l2 = emb / np.linalg.norm(emb, axis=1, keepdims=True)
  np.testing.assert_allclose(l2, ref["embedding_l2"], rtol=0, atol=1e-5)
  inter = state["intermediates"]
  for name in ("stem", "layer1", "layer2", "layer3", "layer4", "bn2", "fc"):
    got = np.asarray(inter[f"dbg_{name}"][0])[0]
    if got.ndim == 3:
      got = got.transpose(2, 0, 1)
    np.testing.assert_allclose(got, ref[f"dbg_{name}"][0], rtol=0, atol=3e-4,
                               err_msg=name)


@pytest.mark.parametrize("name,count", [("iresnet50", 43_590_848),
                                        ("iresnet100", 65_156_160)])
def test_preset_parameter_counts(name, count):
  shapes = convert_arcface.target_shapes(arcface.preset(name))
  assert convert_arcface.num_params(shapes) == count
  assert shapes["params"]["fc"]["kernel"].shape == (25088, 512)


def test_arbitrary_depth_and_odd_input_size():
  cfg = arcface.ArcFaceConfig(layers=(1, 2, 1, 1), widths=(8, 8, 16, 16),
                              stem_width=8, num_features=16,
                              input_size=(30, 30))
  assert cfg.final_hw == (2, 2)  # 30 -> 15 -> 8 -> 4 -> 2 (ceil)
  model = arcface.IResNet(cfg)
  v = arcface.init_variables(model, jax.random.key(0))
  out = jax.jit(model.apply)(v, np.zeros((3, 30, 30, 3), np.float32))
  assert out.shape == (3, 16)
  assert "layer2_1" in v["params"] and "downsample_conv" not in \
      v["params"]["layer2_1"]


def test_demo_preset_trains_in_batchnorm_mode():
  model = arcface.build("demo")
  v = arcface.init_variables(model, jax.random.key(0))
  x = np.random.default_rng(0).uniform(-1, 1, (4, 32, 32, 3)).astype(
      np.float32)
  out, upd = jax.jit(lambda v, x: model.apply(
      v, x, train=True, mutable=["batch_stats"]))(v, x)
  assert out.shape == (4, 128) and np.isfinite(np.asarray(out)).all()
  assert arcface.param_count(v["params"]) < 1_000_000


def test_wrong_image_size_is_a_clear_error():
  model = arcface.build("demo")
  v = jax.eval_shape(lambda r: arcface.init_variables(model, r),
                     jax.random.key(0))
  with pytest.raises(ValueError, match=r"expects images \[B, 32, 32, 3\]"):
    jax.eval_shape(lambda x: model.apply(v, x),
                   jax.ShapeDtypeStruct((1, 64, 64, 3), np.float32))


def test_unknown_preset():
  with pytest.raises(ValueError, match="unknown ArcFace preset"):
    arcface.preset("iresnet42")
