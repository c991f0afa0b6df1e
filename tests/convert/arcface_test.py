"""ArcFace converter: real key lists (shape level), errors, .pth end to end."""

import os

import jax
import numpy as np
import pytest

from diffinf_jax.convert import arcface as mapping
from diffinf_jax.convert import kit
from diffinf_jax.models.guidance import arcface

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures",
                        "arcface_iresnet")


@pytest.fixture(scope="module")
def state_dict():
  return dict(np.load(os.path.join(FIXTURES,
                                   "arcface_iresnet_public_state_dict.npz")))


@pytest.mark.parametrize("name,entries,params", [
    ("iresnet50", 475, 43_590_848), ("iresnet100", 925, 65_156_160)])
def test_real_key_lists_convert_at_shape_level(name, entries, params):
  sd = kit.read_key_list(os.path.join(FIXTURES, f"{name}_keys.txt"))
  assert len(sd) == entries
  variables, cfg, dtype, prefix = mapping.convert_state_dict(
      sd, arcface.preset(name), what=name)
  assert cfg == arcface.preset(name) and dtype == "float32" and prefix == ""
  assert mapping.num_params(variables) == params
  assert variables["params"]["fc"]["kernel"].shape == (25088, 512)
  # Inference from the keys alone gives the same preset (112x112 input).
  _, inferred, _, _ = mapping.convert_state_dict(sd, what=name)
  assert inferred == arcface.preset(name)
  # Files from before PyTorch 0.4.1 have no num_batches_tracked.
  old = {k: v for k, v in sd.items() if "num_batches_tracked" not in k}
  mapping.convert_state_dict(old, what=name)


def test_module_prefix_is_stripped(state_dict):
  wrapped = {f"module.{k}": v for k, v in state_dict.items()}
  _, _, _, prefix = mapping.convert_state_dict(wrapped)
  assert prefix == "module."


def test_fc_permutation_matches_nchw_flatten(state_dict):
  variables, cfg, _, _ = mapping.convert_state_dict(state_dict)
  w = state_dict["fc.weight"].astype(np.float32)          # [nf, C*h*w]
  x = np.random.default_rng(0).normal(size=(512, 2, 2)).astype(np.float32)
  want = w @ x.reshape(-1)                                 # NCHW flatten
  got = x.transpose(1, 2, 0).reshape(-1) @ variables["params"]["fc"]["kernel"]
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_missing_and_unconsumed_keys(state_dict):
  sd = dict(state_dict)
  del sd["layer2.0.prelu.weight"]
  sd["layer2.0.extra.weight"] = np.zeros(3, np.float16)
  with pytest.raises(ValueError) as e:
    mapping.convert_state_dict(sd, what="x.pth")
  msg = str(e.value)
  assert "1 missing keys: layer2.0.prelu.weight" in msg
  assert "1 unconsumed keys: layer2.0.extra.weight" in msg


def test_shape_mismatch(state_dict):
  sd = dict(state_dict)
  sd["layer3.0.bn2.weight"] = np.zeros(7, np.float16)
  with pytest.raises(ValueError, match="shape mismatches: layer3.0.bn2.weight"):
    mapping.convert_state_dict(sd)


def test_wrong_arch_for_checkpoint(state_dict):
  with pytest.raises(ValueError, match=r"layers=\[1, 1, 1, 1\].*wrong --arch"):
    mapping.convert_state_dict(state_dict, arcface.preset("iresnet50"))


def test_bisenet_file_given_to_arcface():
  sd = kit.read_key_list(os.path.join(
      FIXTURES, "..", "bisenet_face_parsing", "bisenet_keys.txt"))
  with pytest.raises(ValueError, match="convert bisenet"):
    mapping.convert_state_dict(sd)


def test_dtype_checks(state_dict):
  with pytest.raises(ValueError, match="parameters are float16.*float32"):
    mapping.convert_state_dict(state_dict, expect_dtype="float32")
  mixed = dict(state_dict)
  mixed["fc.bias"] = mixed["fc.bias"].astype(np.float32)
  with pytest.raises(ValueError, match="mixed parameter dtypes"):
    mapping.convert_state_dict(mixed)
  ints = dict(state_dict)
  ints["fc.bias"] = ints["fc.bias"].astype(np.int8)
  with pytest.raises(ValueError, match="dtype int8"):
    mapping.convert_state_dict(ints)


@pytest.mark.torch
@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_pth_end_to_end(tmp_path, state_dict, dtype):
  torch = pytest.importorskip("torch")
  from diffinf_jax import pretrained
  from weights_convert import arcface as tool
  src = str(tmp_path / "backbone.pth")
  torch.save({k: torch.from_numpy(v.astype(dtype) if v.dtype.kind == "f"
                                  else v) for k, v in state_dict.items()}, src)
  dst = str(tmp_path / "arcface")
  manifest = tool.convert(src, dst, source_dtype=dtype)
  assert manifest["dtype"] == dtype and manifest["num_source_keys"] == 115
  assert manifest["num_params"] == 5_167_936
  assert len(manifest["source_sha256"]) == 64
  model, variables, cfg = pretrained.load_arcface(dst)
  ref = np.load(os.path.join(FIXTURES, "arcface_iresnet_public.npz"))
  with jax.default_matmul_precision("highest"):
    emb = model.apply(variables, ref["x"].transpose(0, 2, 3, 1))
  np.testing.assert_allclose(np.asarray(emb), ref["embedding"], atol=2e-4)


@pytest.mark.torch
def test_not_a_checkpoint(tmp_path):
  pytest.importorskip("torch")
  from weights_convert import arcface as tool
  bad = tmp_path / "bad.pth"
  bad.write_text("hello")
  with pytest.raises(ValueError, match="not a loadable PyTorch checkpoint"):
    tool.convert(str(bad), str(tmp_path / "out"))
  with pytest.raises(FileNotFoundError, match="checkpoint not found"):
    tool.convert(str(tmp_path / "none.pth"), str(tmp_path / "out"))


def test_missing_weights_dir_message():
  from diffinf_jax import pretrained
  with pytest.raises(FileNotFoundError, match="diffinf convert arcface"):
    pretrained.load_arcface("no/such/dir")
