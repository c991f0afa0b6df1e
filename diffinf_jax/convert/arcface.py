"""insightface `backbone.pth` (IResNet) state dict -> Flax variables (torch-free).

The state dict arrives as {name: numpy array} (the thin torch reader is
`weights_convert/arcface.py`). Every source key is consumed (BatchNorm
`num_batches_tracked` is dropped), every Flax leaf is filled, or a ValueError
lists the differences. fp16 files are upcast to float32.
"""

from __future__ import annotations

import math
import re

import jax
import numpy as np

from diffinf_jax.convert import kit
from diffinf_jax.models.guidance import arcface

_REQUIRED = ("conv1.weight", "prelu.weight", "bn2.weight", "fc.weight",
             "features.weight")


def torch_prefix(mpath: tuple[str, ...]) -> str:
  """('layer1_0', 'downsample_bn') -> 'layer1.0.downsample.1'."""
  parts = []
  for p in mpath:
    m = re.fullmatch(r"layer(\d+)_(\d+)", p)
    if m:
      parts.append(f"layer{m.group(1)}.{m.group(2)}")
    elif p == "downsample_conv":
      parts.append("downsample.0")
    elif p == "downsample_bn":
      parts.append("downsample.1")
    else:
      parts.append(p)
  return ".".join(parts)


def _check_is_iresnet(state_dict: dict, what: str) -> None:
  missing = [k for k in _REQUIRED if k not in state_dict]
  if missing:
    hint = ""
    if any(k.startswith("cp.resnet.") for k in state_dict):
      hint = " (this looks like a BiSeNet face-parsing checkpoint: use " \
             "`diffinf convert bisenet`)"
    raise ValueError(f"{what}: not an insightface iresnet backbone.pth, "
                     f"missing {missing}{hint}")


def infer_config(state_dict: dict, input_size: tuple[int, int] | None = None,
                 what: str = "checkpoint") -> arcface.ArcFaceConfig:
  """Reads layers, widths and embedding size from the keys and shapes.

  The input size cannot be read from the file exactly (each stage maps n to
  ceil(n / 2)); without `input_size`, a square input is assumed: 112 when the
  final map is 7x7 (all released models), else 16 x final side.
  """
  _check_is_iresnet(state_dict, what)
  blocks = {}
  for k in state_dict:
    m = re.match(r"layer(\d+)\.(\d+)\.", k)
    if m:
      s, i = int(m.group(1)), int(m.group(2))
      blocks[s] = max(blocks.get(s, 0), i + 1)
  stages = sorted(blocks)
  if not stages or stages != list(range(1, len(stages) + 1)):
    raise ValueError(f"{what}: stage keys layer1..layerN not contiguous: "
                     f"{stages}")
  layers = tuple(blocks[s] for s in stages)
  widths = tuple(int(state_dict[f"layer{s}.0.conv1.weight"].shape[0])
                 for s in stages)
  stem = int(state_dict["conv1.weight"].shape[0])
  nf, fc_in = (int(v) for v in state_dict["fc.weight"].shape)
  fc_scale, rem = divmod(fc_in, widths[-1])
  if rem:
    raise ValueError(f"{what}: fc.weight in-features {fc_in} is not a "
                     f"multiple of the last width {widths[-1]}")
  if input_size is None:
    side = math.isqrt(fc_scale)
    if side * side != fc_scale:
      raise ValueError(f"{what}: fc_scale {fc_scale} is not square; pass "
                       "--input-size H W")
    n = side * 2 ** len(layers)
    input_size = (112, 112) if side == 7 else (n, n)
  cfg = arcface.ArcFaceConfig(layers=layers, widths=widths, stem_width=stem,
                              num_features=nf, input_size=tuple(input_size))
  fh, fw = cfg.final_hw
  if fh * fw != fc_scale:
    raise ValueError(f"{what}: input size {cfg.input_size} gives a "
                     f"{fh}x{fw} final map, but fc expects {fc_scale} "
                     "positions; pass the input size the model was trained at")
  return cfg


def target_shapes(cfg: arcface.ArcFaceConfig) -> dict:
  """Variables tree of ShapeDtypeStructs (no computation, no memory)."""
  model = arcface.IResNet(cfg)
  return jax.eval_shape(lambda r: arcface.init_variables(model, r),
                        jax.random.key(0))


def _fc_hook(cfg: arcface.ArcFaceConfig):
  fh, fw = cfg.final_hw
  c = cfg.widths[-1]

  def fn(w):  # torch [nf, C*fh*fw] (NCHW flatten) -> [fh*fw*C, nf] (NHWC)
    nf = w.shape[0]
    return w.reshape(nf, c, fh, fw).transpose(2, 3, 1, 0).reshape(
        fh * fw * c, nf)
  return fn


def convert_state_dict(state_dict: dict, cfg: arcface.ArcFaceConfig | None = None,
                       *, what: str = "checkpoint",
                       expect_dtype: str | None = None,
                       input_size: tuple[int, int] | None = None):
  """Maps a numpy state dict to Flax variables {'params', 'batch_stats'}.

  Args:
    state_dict: {torch name: np.ndarray} (or ShapeOnly for layout checks).
    cfg: architecture to fill; inferred from the keys when None. When given,
      a checkpoint of another depth/width fails with the inferred config named.
    what: the source name for error messages.
    expect_dtype: 'float16' | 'float32' | 'auto'/None; a mismatch raises.
    input_size: (H, W) used when inferring the config.

  Returns:
    (variables, cfg, source_dtype, source_prefix).
  """
  state_dict, prefix = kit.strip_prefix(state_dict)
  src_dtype = kit.check_float_state_dict(state_dict, what, expect_dtype)
  if cfg is None:
    cfg = infer_config(state_dict, input_size, what)
  else:
    found = infer_config(state_dict, None, what)
    if (found.layers, found.widths, found.num_features) != (
        cfg.layers, cfg.widths, cfg.num_features):
      raise ValueError(
          f"{what}: checkpoint is an iresnet with layers={list(found.layers)}"
          f", widths={list(found.widths)}, num_features="
          f"{found.num_features}, but the requested architecture has "
          f"layers={list(cfg.layers)}, widths={list(cfg.widths)}, "
          f"num_features={cfg.num_features} (wrong --arch for this file?)")
    infer_config(state_dict, input_size or cfg.input_size, what)
  variables = kit.map_torch_modules(
      state_dict, target_shapes(cfg), torch_prefix, what,
      hooks={("fc", "kernel"): _fc_hook(cfg)})
  return variables, cfg, src_dtype, prefix


def num_params(variables) -> int:
  return sum(int(np.prod(v.shape))
             for v in jax.tree_util.tree_leaves(variables["params"]))
