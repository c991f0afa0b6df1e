"""ArcFace identity backbone F_id: insightface `arcface_torch` IResNet in Flax.

Architecture (NHWC here, NCHW upstream): conv3x3 -> BN -> per-channel PReLU ->
four stages of pre-activation `IBasicBlock`s (every stage starts with stride 2,
on the block's second conv and on the 1x1 shortcut) -> BN -> flatten in torch's
NCHW order -> dropout -> Dense -> BatchNorm1d `features`. The output is the raw
embedding (not L2-normalised). BatchNorm eps 1e-5; parity runs use
`train=False` (running statistics).

Module names follow the torch state dict (`layer1_0/bn1` <-
`layer1.0.bn1.*`, `layer1_0/downsample_conv` <- `layer1.0.downsample.0`) so the
converter is a table.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from diffinf_jax.models import arch_config
from diffinf_jax.models.guidance import init

BN_EPS = 1e-5
BN_MOMENTUM = 0.9  # torch momentum 0.1

PRESET_LAYERS = {
    "iresnet18": (2, 2, 2, 2),
    "iresnet34": (3, 4, 6, 3),
    "iresnet50": (3, 4, 14, 3),
    "iresnet100": (3, 13, 30, 3),
    "iresnet200": (6, 26, 60, 6),
}


@dataclasses.dataclass(frozen=True)
class ArcFaceConfig:
  """Architecture of an IResNet backbone.

  Attributes:
    layers: blocks per stage (4 stages).
    widths: stage widths; upstream fixes 64/128/256/512.
    stem_width: channels of the stem conv (64 upstream).
    num_features: embedding size.
    input_size: (H, W) the network accepts; sizes `fc` (upstream 112x112).
    dropout: dropout before `fc` (0 for all released models).
  """
  layers: tuple[int, ...] = PRESET_LAYERS["iresnet50"]
  widths: tuple[int, ...] = (64, 128, 256, 512)
  stem_width: int = 64
  num_features: int = 512
  input_size: tuple[int, int] = (112, 112)
  dropout: float = 0.0

  def __post_init__(self):
    object.__setattr__(self, "layers", tuple(int(v) for v in self.layers))
    object.__setattr__(self, "widths", tuple(int(v) for v in self.widths))
    object.__setattr__(self, "input_size",
                       tuple(int(v) for v in self.input_size))
    if len(self.layers) != len(self.widths):
      raise ValueError(f"ArcFaceConfig: {len(self.layers)} stage depths "
                       f"but {len(self.widths)} widths")
    if any(v < 1 for v in self.layers):
      raise ValueError(f"ArcFaceConfig: every stage needs >= 1 block, "
                       f"got layers={self.layers}")

  @property
  def final_hw(self) -> tuple[int, int]:
    """Spatial size after the stride-2 stages (ceil(n / 2) each)."""
    h, w = self.input_size
    for _ in self.layers:
      h, w = math.ceil(h / 2), math.ceil(w / 2)
    return h, w

  def to_dict(self) -> dict[str, Any]:
    return arch_config.to_dict(self, "iresnet")

  @classmethod
  def from_dict(cls, d: dict[str, Any]) -> "ArcFaceConfig":
    return arch_config.from_dict(
        cls, d, "iresnet", "point arcface_weights_dir at an arcface conversion")


def preset(name: str, **overrides) -> ArcFaceConfig:
  """Named architectures: iresnet18/34/50/100/200 (112x112, 512-d) and `demo`.

  `demo` is a small CPU-fast variant for 32x32 demo faces: one block per
  stage, widths 16/32/64/128, 128-d embedding (0.37 M parameters).
  """
  if name in PRESET_LAYERS:
    cfg = ArcFaceConfig(layers=PRESET_LAYERS[name])
  elif name == "demo":
    cfg = ArcFaceConfig(layers=(1, 1, 1, 1), widths=(16, 32, 64, 128),
                        stem_width=16, num_features=128, input_size=(32, 32))
  else:
    raise ValueError(f"unknown ArcFace preset {name!r}; choose one of "
                     f"{sorted(PRESET_LAYERS) + ['demo']}")
  return dataclasses.replace(cfg, **overrides) if overrides else cfg


class PReLU(nn.Module):
  """Per-channel PReLU (torch `nn.PReLU(C)`), weight [C] initialised to 0.25."""

  @nn.compact
  def __call__(self, x):
    w = self.param("weight", nn.initializers.constant(0.25), (x.shape[-1],),
                   jnp.float32)
    return jnp.where(x >= 0, x, w.astype(x.dtype) * x)


def _bn(name: str, train: bool) -> nn.BatchNorm:
  return nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM,
                      epsilon=BN_EPS, name=name)


def _conv(features: int, kernel: int, stride: int, name: str) -> nn.Conv:
  pad = (kernel - 1) // 2
  # Explicit torch padding: 'SAME' pads (0, 1) for stride 2 on even inputs.
  return nn.Conv(features, (kernel, kernel), strides=(stride, stride),
                 padding=((pad, pad), (pad, pad)), use_bias=False, name=name)


class IBasicBlock(nn.Module):
  """BN -> conv3x3 -> BN -> PReLU -> conv3x3 (stride) -> BN, plus shortcut."""
  features: int
  stride: int
  downsample: bool

  @nn.compact
  def __call__(self, x, train: bool = False):
    y = _bn("bn1", train)(x)
    y = _conv(self.features, 3, 1, "conv1")(y)
    y = _bn("bn2", train)(y)
    y = PReLU(name="prelu")(y)
    y = _conv(self.features, 3, self.stride, "conv2")(y)
    y = _bn("bn3", train)(y)
    if self.downsample:
      x = _conv(self.features, 1, self.stride, "downsample_conv")(x)
      x = _bn("downsample_bn", train)(x)
    return y + x


class IResNet(nn.Module):
  """ArcFace IResNet backbone: x [B, H, W, 3] in [-1, 1] -> embedding [B, F].

  Intermediates (dbg_stem, dbg_layer1..4, dbg_bn2, dbg_fc) are sown into the
  collection for debugging and parity tests.
  """
  config: ArcFaceConfig

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    cfg = self.config
    if x.ndim != 4 or tuple(x.shape[1:]) != (*cfg.input_size, 3):
      raise ValueError(
          f"ArcFace expects images [B, {cfg.input_size[0]}, "
          f"{cfg.input_size[1]}, 3] (RGB in [-1, 1]), got {tuple(x.shape)}; "
          "crop/resize with diffinf_jax.models.guidance.transforms."
          "arcface_input first")
    x = _conv(cfg.stem_width, 3, 1, "conv1")(x)
    x = _bn("bn1", train)(x)
    x = PReLU(name="prelu")(x)
    self.sow("intermediates", "dbg_stem", x)
    in_ch = cfg.stem_width
    for s, (n, width) in enumerate(zip(cfg.layers, cfg.widths)):
      for i in range(n):
        stride = 2 if i == 0 else 1
        ds = i == 0 and (stride != 1 or in_ch != width)
        x = IBasicBlock(width, stride, ds, name=f"layer{s + 1}_{i}")(x, train)
        in_ch = width
      self.sow("intermediates", f"dbg_layer{s + 1}", x)
    x = _bn("bn2", train)(x)
    self.sow("intermediates", "dbg_bn2", x)
    # torch flattens NCHW; the converter permutes fc rows so that flattening
    # NHWC here gives the same product (cheaper than a transpose per call).
    x = x.reshape(x.shape[0], -1)
    x = nn.Dropout(cfg.dropout, deterministic=not train)(x)
    x = nn.Dense(cfg.num_features, name="fc")(x)
    self.sow("intermediates", "dbg_fc", x)
    return _bn("features", train)(x)


def build(config: ArcFaceConfig | str) -> IResNet:
  """IResNet from a config or a preset name."""
  if isinstance(config, str):
    config = preset(config)
  return IResNet(config)


init_variables = init.random_variables


def embed(model: IResNet, variables: dict, x: jax.Array) -> jax.Array:
  """Raw embeddings [B, F] of images x [B, H, W, 3] in [-1, 1] (eval mode)."""
  return model.apply(variables, x, train=False)


def param_count(tree: Any) -> int:
  return sum(int(v.size) for v in jax.tree_util.tree_leaves(tree))


def stage_names(layers: Sequence[int]) -> list[str]:
  """Block module names in network order, e.g. ['layer1_0', 'layer1_1', ...]."""
  return [f"layer{s + 1}_{i}" for s, n in enumerate(layers) for i in range(n)]
