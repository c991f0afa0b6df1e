"""DiffAE converter: key accounting, the real FFHQ-128 layout, manifest."""

import json
import os

import jax
import numpy as np
import pytest

from diffinf_jax.convert import kit
from diffinf_jax.convert import diffae as mapping
from diffinf_jax.models import diffae

FIX = os.path.join(os.path.dirname(__file__), "..", "fixtures", "diffae")


def _target(preset):
  return jax.eval_shape(lambda: diffae.init_variables(
      diffae.create_model(preset), jax.random.key(0)))


def test_real_ffhq128_layout_converts_cleanly():
  keys = kit.read_key_list(os.path.join(FIX,
                                           "ffhq128_autoenc_130M_keys.txt"))
  assert len(keys) == 608
  out = mapping.convert_state_dict(keys, _target("ffhq128"), "keys.txt")
  count = lambda t: sum(int(np.prod(v.shape))
                        for v in jax.tree_util.tree_leaves(t))
  assert count(out) == 128545155
  # The fixture README's split: encoder 24,673,536, UNet 103,871,619.
  assert count(out["params"]["encoder"]) == 24673536
  assert count(out["params"]["unet"]) == 103871619


def test_mismatches_are_listed():
  keys = kit.read_key_list(os.path.join(FIX,
                                           "ffhq128_autoenc_130M_keys.txt"))
  broken = dict(keys)
  broken.pop("out.2.weight")
  broken["extra.weight"] = kit.ShapeOnly((3,))
  broken["encoder.out.3.weight"] = kit.ShapeOnly((512, 256, 1, 1))
  with pytest.raises(ValueError) as e:
    mapping.convert_state_dict(broken, _target("ffhq128"), "ckpt")
  msg = str(e.value)
  assert "missing keys: out.2.weight" in msg
  assert "unconsumed keys: extra.weight" in msg
  assert "encoder.out.3.weight" in msg and "shape mismatches" in msg
  # The same keys do not fit another architecture.
  with pytest.raises(ValueError, match="does not match"):
    mapping.convert_state_dict(keys, _target("tiny"), "ckpt")


def test_prefix_selection():
  sd = {"x_T": 0, "ema_model.a": 1, "model.a": 2}
  assert mapping.select_prefix(sd, None) == ({"a": 1}, "ema_model.")
  assert mapping.select_prefix(sd, "model.") == ({"a": 2}, "model.")
  with pytest.raises(ValueError, match="no weights with prefix"):
    mapping.select_prefix({"foo.a": 1}, None)


@pytest.mark.torch
def test_cli_writes_layout_and_manifest(tmp_path):
  pytest.importorskip("torch")
  from diffinf_jax import cli
  dst = str(tmp_path / "dae")
  src = os.path.join(FIX, "diffae_public.ckpt")
  assert cli.main(["convert", "diffae", src, dst]) == 0
  manifest = json.load(open(os.path.join(dst, "manifest.json")))
  assert manifest["source_sha256"] == kit.sha256_file(src)
  assert manifest["source_prefix"] == "ema_model."
  assert manifest["num_source_keys"] == 396
  assert manifest["num_params"] == 1485731
  assert manifest["dtype"] == "float32"
  cfg = json.load(open(os.path.join(dst, "config.json")))
  assert cfg["channel_mult"] == [1, 1, 2] and cfg["enc_out_channels"] == 64
  assert cli.main(["convert", "diffae", str(tmp_path / "nope.ckpt"),
                   dst]) == 1


def test_unsupported_hyper_parameters_are_named():
  from weights_convert import diffae as conv
  hp = {"img_size": 32, "net_ch": 32, "net_ch_mult": [1, 2],
        "net_enc_channel_mult": [1, 2], "net_resblock_updown": False,
        "model_type": "ddpm"}
  with pytest.raises(ValueError) as e:
    conv._architecture({"hyper_parameters": hp}, None, "x.ckpt")
  assert "net_resblock_updown=False" in str(e.value)
  assert "model_type='ddpm'" in str(e.value)
  with pytest.raises(ValueError, match="no DiffAE hyper_parameters"):
    conv._architecture({"hyper_parameters": {}}, None, "x.ckpt")


_CALLBACK_MODULE = '''
class ModelCheckpoint:
  def __init__(self):
    self.best = 1.0


class Hostile:
  """Unpickling this would create a directory (a stand-in for any code)."""
  def __init__(self, path):
    self.path = path

  def __reduce__(self):
    import os
    return (os.makedirs, (self.path,))
'''


@pytest.mark.torch
def test_lightning_extras_without_lightning(tmp_path, monkeypatch):
  """A real Lightning 1.4 last.ckpt pickles callback classes as dict keys,
  which weights_only=True refuses; the converter must still read it."""
  import sys
  torch = pytest.importorskip("torch")
  src = torch.load(os.path.join(FIX, "diffae_public.ckpt"),
                   map_location="cpu", weights_only=True)
  (tmp_path / "fake_lightning_cb.py").write_text(_CALLBACK_MODULE)
  monkeypatch.syspath_prepend(str(tmp_path))
  import fake_lightning_cb
  # Only the model weights (ema_model.) and x_T: a pruned single copy.
  sd = {k: v for k, v in src["state_dict"].items() if not
        k.startswith("model.")}
  ckpt = {"state_dict": sd, "hyper_parameters": src["hyper_parameters"],
          "callbacks": {fake_lightning_cb.ModelCheckpoint:
                        {"best": fake_lightning_cb.ModelCheckpoint()}},
          "optimizer_states": [{"state": {}}],
          "hostile": fake_lightning_cb.Hostile(str(tmp_path / "pwned"))}
  path = str(tmp_path / "last.ckpt")
  torch.save(ckpt, path)
  # The class is gone when converting (no lightning installed).
  del sys.modules["fake_lightning_cb"]
  (tmp_path / "fake_lightning_cb.py").unlink()
  with pytest.raises(Exception):
    torch.load(path, map_location="cpu", weights_only=True)
  from weights_convert import diffae as conv
  m = conv.convert(path, str(tmp_path / "dst"))
  assert m["source_prefix"] == "ema_model." and m["num_source_keys"] == 396
  assert not (tmp_path / "pwned").exists()  # foreign callables never run
  with pytest.raises(ValueError, match="no weights with prefix"):
    conv.convert(path, str(tmp_path / "dst2"), prefix="model.")
