"""DiffAE converter: key accounting, the real FFHQ-128 layout, manifest."""

import json
import os

import jax
import numpy as np
import pytest

from diffinf_jax.convert import common
from diffinf_jax.convert import diffae as mapping
from diffinf_jax.models import diffae

FIX = os.path.join(os.path.dirname(__file__), "..", "fixtures", "diffae")


def _target(preset):
  return jax.eval_shape(lambda: diffae.init_variables(
      diffae.create_model(preset), jax.random.key(0)))


def test_real_ffhq128_layout_converts_cleanly():
  keys = common.read_key_list(os.path.join(FIX,
                                           "ffhq128_autoenc_130M_keys.txt"))
  assert len(keys) == 608
  out = mapping.convert_state_dict(keys, _target("ffhq128"), "keys.txt")
  n = sum(int(np.prod(v.shape)) for v in jax.tree_util.tree_leaves(out))
  assert n == 128545155


def test_mismatches_are_listed():
  keys = common.read_key_list(os.path.join(FIX,
                                           "ffhq128_autoenc_130M_keys.txt"))
  broken = dict(keys)
  broken.pop("out.2.weight")
  broken["extra.weight"] = common.ShapeOnly((3,))
  broken["encoder.out.3.weight"] = common.ShapeOnly((512, 256, 1, 1))
  with pytest.raises(ValueError) as e:
    mapping.convert_state_dict(broken, _target("ffhq128"), "ckpt")
  msg = str(e.value)
  assert "missing: out.2.weight" in msg
  assert "unconsumed: extra.weight" in msg
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
  assert manifest["source_sha256"] == common.sha256_file(src)
  assert manifest["source_prefix"] == "ema_model."
  assert manifest["num_source_keys"] == 396
  assert manifest["num_params"] == 1485731
  assert manifest["dtype"] == "float32"
  cfg = json.load(open(os.path.join(dst, "config.json")))
  assert cfg["channel_mult"] == [1, 1, 2] and cfg["enc_out_channels"] == 64
  assert cli.main(["convert", "diffae", str(tmp_path / "nope.ckpt"),
                   dst]) == 1
