"""BiSeNet port: parity with the face-parsing.PyTorch fixture, demo variant."""

import os

import jax
import numpy as np
import pytest

from diffinf_jax.convert import bisenet as convert_bisenet
from diffinf_jax.models.guidance import face_parsing

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures",
                        "bisenet_face_parsing")


def _find(tree, key):
  for k, v in tree.items():
    if k == key:
      return v[0]
    if isinstance(v, dict):
      found = _find(v, key)
      if found is not None:
        return found
  return None


def test_parity_with_bisenet_fixture():
  sd = dict(np.load(os.path.join(FIXTURES, "bisenet_public_state_dict.npz")))
  ref = dict(np.load(os.path.join(FIXTURES, "bisenet_public.npz")))
  variables, cfg, _, _ = convert_bisenet.convert_state_dict(
      sd, input_size=(64, 64))
  assert cfg.num_classes == 19
  x = ref["x"].transpose(0, 2, 3, 1)
  with jax.default_matmul_precision("highest"):
    outs, state = face_parsing.BiSeNet(cfg).apply(variables, x,
                                                  mutable=["intermediates"])
  for got, key in zip(outs, ("out", "out16", "out32")):
    np.testing.assert_allclose(np.asarray(got).transpose(0, 3, 1, 2),
                               ref[key], rtol=0, atol=1e-3, err_msg=key)
  for key in ("res_feat8", "res_feat16", "res_feat32", "cp_feat_cp8",
              "cp_feat_cp16", "ffm", "head_out_lowres", "head_out16_lowres",
              "head_out32_lowres"):
    got = np.asarray(_find(state["intermediates"], f"dbg_{key}"))[0]
    np.testing.assert_allclose(got.transpose(2, 0, 1), ref[f"dbg_{key}"][0],
                               rtol=0, atol=1e-3, err_msg=key)
  # argmax only where the fixture's top-2 margin is not a near-tie.
  top2 = np.sort(ref["out"], axis=1)[:, -2:]
  sure = (top2[:, 1] - top2[:, 0]) > 2e-3
  parsing = np.asarray(outs[0]).argmax(-1)
  assert sure.mean() > 0.95
  np.testing.assert_array_equal(parsing[sure], ref["parsing"][sure])


def test_released_parameter_count():
  shapes = convert_bisenet.target_shapes(face_parsing.preset("bisenet"))
  assert convert_bisenet.num_params(shapes) == 13_300_416


def test_demo_variant_non_square_input():
  cfg = face_parsing.preset("demo", input_size=(48, 80))
  model = face_parsing.BiSeNet(cfg)
  v = face_parsing.init_variables(model, jax.random.key(0))
  x = np.random.default_rng(0).normal(size=(2, 48, 80, 3)).astype(np.float32)
  outs, _ = jax.jit(lambda v, x: model.apply(
      v, x, train=True, mutable=["batch_stats"]))(v, x)
  assert [o.shape for o in outs] == [(2, 48, 80, 7)] * 3
  assert np.isfinite(np.asarray(outs[0])).all()


def test_too_small_input_is_a_clear_error():
  model = face_parsing.build("demo")
  v = jax.eval_shape(lambda r: face_parsing.init_variables(model, r),
                     jax.random.key(0))
  with pytest.raises(ValueError, match="H, W >= 32"):
    jax.eval_shape(lambda x: model.apply(v, x),
                   jax.ShapeDtypeStruct((1, 16, 16, 3), np.float32))
