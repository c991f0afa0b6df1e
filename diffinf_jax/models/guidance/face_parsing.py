"""Face parsing network for the structural loss: BiSeNet (face-parsing.PyTorch).

ResNet-18 context path (feat8/16/32) -> two attention-refinement modules plus
a global-average branch, fused top-down with nearest upsampling to the exact
next-level size -> feature fusion module on [feat8, feat_cp8] -> main head and
two auxiliary heads, each upsampled to the input size with bilinear
`align_corners=True`. BatchNorm eps 1e-5, inference with `train=False`.

Module names follow the torch state dict (`cp/resnet/layer1_0/conv1` <-
`cp.resnet.layer1.0.conv1.weight`, `cp/arm16/conv/conv` <-
`cp.arm16.conv.conv.weight`), so the converter is a table.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from diffinf_jax.models import arch_config
from diffinf_jax.models.guidance import init

from diffinf_jax.models.guidance import resize

BN_EPS = 1e-5
BN_MOMENTUM = 0.9

CELEBAMASK_CLASSES = (
    "background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "eye_g",
    "l_ear", "r_ear", "ear_r", "nose", "mouth", "u_lip", "l_lip", "neck",
    "neck_l", "cloth", "hair", "hat")
DEMO_CLASSES = ("background", "skin", "brows", "eyes", "nose", "mouth", "hair")


@dataclasses.dataclass(frozen=True)
class BiSeNetConfig:
  """Architecture of a BiSeNet face parser (defaults: the released model).

  Attributes:
    num_classes: output classes (19 for CelebAMask-HQ, 7 for the demo).
    resnet_widths: ResNet-18 stage widths (64/128/256/512 upstream).
    context_ch: ARM / head width in the context path (128).
    ffm_ch: feature fusion width (256); its attention squeezes by 4.
    head_mid: main head hidden width (256).
    aux_mid: auxiliary heads hidden width (64).
    input_size: (H, W) the network is run at (512 upstream inference).
  """
  num_classes: int = 19
  resnet_widths: tuple[int, ...] = (64, 128, 256, 512)
  context_ch: int = 128
  ffm_ch: int = 256
  head_mid: int = 256
  aux_mid: int = 64
  input_size: tuple[int, int] = (512, 512)

  def __post_init__(self):
    object.__setattr__(self, "resnet_widths",
                       tuple(int(v) for v in self.resnet_widths))
    object.__setattr__(self, "input_size",
                       tuple(int(v) for v in self.input_size))
    if len(self.resnet_widths) != 4:
      raise ValueError("BiSeNetConfig: resnet_widths needs 4 stages, got "
                       f"{self.resnet_widths}")

  def to_dict(self) -> dict[str, Any]:
    return arch_config.to_dict(self, "bisenet")

  @classmethod
  def from_dict(cls, d: dict[str, Any]) -> "BiSeNetConfig":
    return arch_config.from_dict(
        cls, d, "bisenet", "point parsing_weights_dir at a bisenet conversion")


def preset(name: str, **overrides) -> BiSeNetConfig:
  """`bisenet` (released 19-class model, 512 input) or `demo` (7 classes, 64)."""
  if name == "bisenet":
    cfg = BiSeNetConfig()
  elif name == "demo":
    cfg = BiSeNetConfig(num_classes=len(DEMO_CLASSES),
                        resnet_widths=(16, 32, 64, 128), context_ch=32,
                        ffm_ch=64, head_mid=64, aux_mid=16, input_size=(64, 64))
  else:
    raise ValueError(f"unknown BiSeNet preset {name!r}; choose bisenet | demo")
  return dataclasses.replace(cfg, **overrides) if overrides else cfg


def _bn(name: str, train: bool) -> nn.BatchNorm:
  return nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM,
                      epsilon=BN_EPS, name=name)


def _conv(features: int, kernel: int, stride: int, name: str,
          bias: bool = False) -> nn.Conv:
  pad = (kernel - 1) // 2
  return nn.Conv(features, (kernel, kernel), strides=(stride, stride),
                 padding=((pad, pad), (pad, pad)), use_bias=bias, name=name)


def _global_mean(x):
  return jnp.mean(x, axis=(1, 2), keepdims=True)


class ConvBNReLU(nn.Module):
  features: int
  kernel: int = 3
  stride: int = 1

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = _conv(self.features, self.kernel, self.stride, "conv")(x)
    return nn.relu(_bn("bn", train)(x))


class BasicBlock(nn.Module):
  """ResNet-18 block; the stride sits on the first conv."""
  features: int
  stride: int
  downsample: bool

  @nn.compact
  def __call__(self, x, train: bool = False):
    y = _conv(self.features, 3, self.stride, "conv1")(x)
    y = nn.relu(_bn("bn1", train)(y))
    y = _conv(self.features, 3, 1, "conv2")(y)
    y = _bn("bn2", train)(y)
    if self.downsample:
      x = _conv(self.features, 1, self.stride, "downsample_conv")(x)
      x = _bn("downsample_bn", train)(x)
    return nn.relu(x + y)


class ResNet18(nn.Module):
  """Returns (feat8, feat16, feat32): outputs of layer2, layer3, layer4."""
  widths: tuple[int, ...]

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = _conv(self.widths[0], 7, 2, "conv1")(x)
    x = nn.relu(_bn("bn1", train)(x))
    x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    feats = []
    in_ch = self.widths[0]
    for s, width in enumerate(self.widths):
      for i in range(2):
        stride = 2 if (i == 0 and s > 0) else 1
        ds = i == 0 and (stride != 1 or in_ch != width)
        x = BasicBlock(width, stride, ds, name=f"layer{s + 1}_{i}")(x, train)
        in_ch = width
      feats.append(x)
    return feats[1], feats[2], feats[3]


class AttentionRefinement(nn.Module):
  """ConvBNReLU 3x3, then channel attention: mean -> 1x1 -> BN -> sigmoid."""
  features: int

  @nn.compact
  def __call__(self, x, train: bool = False):
    feat = ConvBNReLU(self.features, 3, name="conv")(x, train)
    att = _conv(self.features, 1, 1, "conv_atten")(_global_mean(feat))
    att = nn.sigmoid(_bn("bn_atten", train)(att))
    return feat * att


class ContextPath(nn.Module):
  """Returns (feat8, feat_cp8, feat_cp16) as upstream's `ContextPath`."""
  config: BiSeNetConfig

  @nn.compact
  def __call__(self, x, train: bool = False):
    ch = self.config.context_ch
    feat8, feat16, feat32 = ResNet18(self.config.resnet_widths,
                                     name="resnet")(x, train)
    self.sow("intermediates", "dbg_res_feat8", feat8)
    self.sow("intermediates", "dbg_res_feat16", feat16)
    self.sow("intermediates", "dbg_res_feat32", feat32)
    hw8, hw16 = feat8.shape[1:3], feat16.shape[1:3]
    avg = ConvBNReLU(ch, 1, name="conv_avg")(_global_mean(feat32), train)
    feat32_sum = AttentionRefinement(ch, name="arm32")(feat32, train) + avg
    feat32_up = resize.resize_nearest(feat32_sum, hw16)
    feat32_up = ConvBNReLU(ch, 3, name="conv_head32")(feat32_up, train)
    feat16_sum = AttentionRefinement(ch, name="arm16")(feat16, train)
    feat16_up = resize.resize_nearest(feat16_sum + feat32_up, hw8)
    feat16_up = ConvBNReLU(ch, 3, name="conv_head16")(feat16_up, train)
    return feat8, feat16_up, feat32_up


class FeatureFusion(nn.Module):
  features: int

  @nn.compact
  def __call__(self, fsp, fcp, train: bool = False):
    feat = ConvBNReLU(self.features, 1, name="convblk")(
        jnp.concatenate([fsp, fcp], axis=-1), train)
    att = _conv(self.features // 4, 1, 1, "conv1")(_global_mean(feat))
    att = nn.sigmoid(_conv(self.features, 1, 1, "conv2")(nn.relu(att)))
    return feat * att + feat


class Head(nn.Module):
  mid: int
  num_classes: int

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = ConvBNReLU(self.mid, 3, name="conv")(x, train)
    return _conv(self.num_classes, 1, 1, "conv_out")(x)


class BiSeNet(nn.Module):
  """BiSeNet: x [B, H, W, 3] ImageNet-normalised -> 3 logit maps [B, H, W, K].

  Returns (out, out16, out32); only `out` is used at inference. Logits before
  upsampling and other stages are sown into `intermediates` as `dbg_*`.
  """
  config: BiSeNetConfig

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False):
    cfg = self.config
    if x.ndim != 4 or x.shape[-1] != 3 or min(x.shape[1:3]) < 32:
      raise ValueError(f"BiSeNet expects images [B, H, W, 3] with H, W >= 32 "
                       f"(ImageNet-normalised RGB), got {tuple(x.shape)}")
    hw = tuple(x.shape[1:3])
    feat8, feat_cp8, feat_cp16 = ContextPath(cfg, name="cp")(x, train)
    self.sow("intermediates", "dbg_cp_feat_cp8", feat_cp8)
    self.sow("intermediates", "dbg_cp_feat_cp16", feat_cp16)
    fuse = FeatureFusion(cfg.ffm_ch, name="ffm")(feat8, feat_cp8, train)
    self.sow("intermediates", "dbg_ffm", fuse)
    outs = []
    for name, mid, feat in (("conv_out", cfg.head_mid, fuse),
                            ("conv_out16", cfg.aux_mid, feat_cp8),
                            ("conv_out32", cfg.aux_mid, feat_cp16)):
      low = Head(mid, cfg.num_classes, name=name)(feat, train)
      self.sow("intermediates", f"dbg_head_{name[5:]}_lowres", low)
      outs.append(resize.resize_bilinear(low, hw, align_corners=True))
    return tuple(outs)


def build(config: BiSeNetConfig | str) -> BiSeNet:
  if isinstance(config, str):
    config = preset(config)
  return BiSeNet(config)


init_variables = init.random_variables


def parse_logits(model: BiSeNet, variables: dict, x: jax.Array) -> jax.Array:
  """Main-head logits [B, H, W, K] of normalised images x (eval mode)."""
  return model.apply(variables, x, train=False)[0]
