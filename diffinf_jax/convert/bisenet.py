"""face-parsing.PyTorch BiSeNet (`79999_iter.pth`) state dict -> Flax (torch-free).

Every source key is consumed (`num_batches_tracked` is optional: files written
before PyTorch 0.4.1 lack it), every Flax leaf filled, or a ValueError lists
the differences. fp16 files are upcast to float32.
"""

from __future__ import annotations

import re

import jax
import numpy as np

from diffinf_jax.convert import arcface as arcface_convert
from diffinf_jax.convert import kit
from diffinf_jax.models.guidance import face_parsing

_REQUIRED = ("cp.resnet.conv1.weight", "cp.arm16.conv.conv.weight",
             "ffm.convblk.conv.weight", "conv_out.conv_out.weight",
             "conv_out16.conv.conv.weight")

torch_prefix = arcface_convert.torch_prefix  # same naming rules


def infer_config(state_dict: dict, input_size=None,
                 what: str = "checkpoint") -> face_parsing.BiSeNetConfig:
  """Reads class count and widths from the shapes (input size: 512 default)."""
  missing = [k for k in _REQUIRED if k not in state_dict]
  if missing:
    hint = ""
    if "fc.weight" in state_dict and "features.weight" in state_dict:
      hint = (" (this looks like an ArcFace iresnet backbone.pth: use "
              "`diffinf convert arcface`)")
    raise ValueError(f"{what}: not a face-parsing BiSeNet checkpoint, "
                     f"missing {missing}{hint}")
  stages = sorted({int(m.group(1)) for k in state_dict
                   if (m := re.match(r"cp\.resnet\.layer(\d+)\.", k))})
  if stages != [1, 2, 3, 4]:
    raise ValueError(f"{what}: expected ResNet-18 stages layer1..4, found "
                     f"{stages}")
  widths = tuple(int(state_dict[f"cp.resnet.layer{s}.0.conv1.weight"].shape[0])
                 for s in stages)
  return face_parsing.BiSeNetConfig(
      num_classes=int(state_dict["conv_out.conv_out.weight"].shape[0]),
      resnet_widths=widths,
      context_ch=int(state_dict["cp.arm16.conv.conv.weight"].shape[0]),
      ffm_ch=int(state_dict["ffm.convblk.conv.weight"].shape[0]),
      head_mid=int(state_dict["conv_out.conv.conv.weight"].shape[0]),
      aux_mid=int(state_dict["conv_out16.conv.conv.weight"].shape[0]),
      input_size=tuple(input_size or (512, 512)))


def target_shapes(cfg: face_parsing.BiSeNetConfig) -> dict:
  model = face_parsing.BiSeNet(cfg)
  return jax.eval_shape(lambda r: face_parsing.init_variables(model, r),
                        jax.random.key(0))


def convert_state_dict(state_dict: dict, cfg=None, *, what="checkpoint",
                       expect_dtype=None, input_size=None):
  """Maps a numpy state dict to Flax variables {'params', 'batch_stats'}.

  Returns:
    (variables, cfg, source_dtype, source_prefix); see arcface's counterpart.
  """
  state_dict, prefix = kit.strip_prefix(state_dict)
  src_dtype = kit.check_float_state_dict(state_dict, what, expect_dtype)
  inferred = infer_config(state_dict, input_size or (cfg.input_size if cfg
                                                     else None), what)
  if cfg is None:
    cfg = inferred
  elif inferred != cfg:
    raise ValueError(f"{what}: checkpoint architecture {inferred.to_dict()} "
                     f"differs from the requested {cfg.to_dict()}")
  variables = kit.map_torch_modules(state_dict, target_shapes(cfg),
                                       torch_prefix, what)
  return variables, cfg, src_dtype, prefix


def num_params(variables) -> int:
  return sum(int(np.prod(v.shape))
             for v in jax.tree_util.tree_leaves(variables["params"]))
