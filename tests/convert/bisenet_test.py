"""BiSeNet converter: the released key list (shape level), errors, .pth."""

import os

import jax
import numpy as np
import pytest

from diffinf_jax.convert import bisenet as mapping
from diffinf_jax.convert import kit
from diffinf_jax.models.guidance import face_parsing

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures",
                        "bisenet_face_parsing")


@pytest.fixture(scope="module")
def state_dict():
  return dict(np.load(os.path.join(FIXTURES, "bisenet_public_state_dict.npz")))


def test_released_key_list_converts_at_shape_level():
  sd = kit.read_key_list(os.path.join(FIXTURES, "bisenet_keys.txt"))
  assert len(sd) == 191
  variables, cfg, _, _ = mapping.convert_state_dict(sd, what="79999_iter.pth")
  assert cfg == face_parsing.preset("bisenet")
  assert mapping.num_params(variables) == 13_300_416
  old = {k: v for k, v in sd.items() if "num_batches_tracked" not in k}
  assert len(old) == 160
  mapping.convert_state_dict(old)


def test_missing_unconsumed_and_wrong_file(state_dict):
  sd = dict(state_dict)
  del sd["ffm.conv2.weight"]
  sd["cp.resnet.fc.weight"] = np.zeros((10, 512), np.float16)
  with pytest.raises(ValueError, match="missing keys: ffm.conv2.weight.*"
                     "unconsumed keys: cp.resnet.fc.weight"):
    mapping.convert_state_dict(sd)
  arc = kit.read_key_list(os.path.join(
      FIXTURES, "..", "arcface_iresnet", "iresnet50_keys.txt"))
  with pytest.raises(ValueError, match="convert arcface"):
    mapping.convert_state_dict(arc)


def test_requested_architecture_mismatch(state_dict):
  with pytest.raises(ValueError, match="differs from the requested"):
    mapping.convert_state_dict(state_dict, face_parsing.preset("demo"))


def test_fp16_vs_fp32_request(state_dict):
  with pytest.raises(ValueError, match="float16.*--source-dtype float32"):
    mapping.convert_state_dict(state_dict, expect_dtype="float32")


@pytest.mark.torch
def test_pth_end_to_end(tmp_path, state_dict):
  torch = pytest.importorskip("torch")
  from diffinf_jax import pretrained
  from weights_convert import bisenet as tool
  src = str(tmp_path / "79999_iter.pth")
  torch.save({k: torch.from_numpy(v) for k, v in state_dict.items()}, src)
  dst = str(tmp_path / "bisenet")
  manifest = tool.convert(src, dst, input_size=(64, 64))
  assert manifest["num_source_keys"] == 191 and manifest["dtype"] == "float16"
  model, variables, cfg = pretrained.load_bisenet(dst)
  assert cfg.input_size == (64, 64) and cfg.num_classes == 19
  ref = np.load(os.path.join(FIXTURES, "bisenet_public.npz"))
  with jax.default_matmul_precision("highest"):
    out = model.apply(variables, ref["x"].transpose(0, 2, 3, 1))[0]
  np.testing.assert_allclose(np.asarray(out).transpose(0, 3, 1, 2), ref["out"],
                             atol=1e-3)
  with pytest.raises(ValueError, match="not --num-classes 7"):
    tool.convert(src, str(tmp_path / "b2"), num_classes=7)
