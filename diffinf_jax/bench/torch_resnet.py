"""A PyTorch mirror of models/resnet.py's ResNet-18 + head, for peer benchmarks.

`build_module(variables)` returns a torch.nn.Module with the Flax weights
(conv kernels [kh, kw, C_in, C_out] -> [C_out, C_in, kh, kw], Dense kernels
[D_in, D_out] -> [D_out, D_in]) whose BatchNorm layers always use the running
statistics, as `diffinf influence` does: the only setting in which
per-example gradients are defined. The statistics are plain tensor
attributes, not buffers, so hook-based per-sample libraries (Opacus) treat the
layer as an ordinary module with two parameters (scale, bias).

torch is imported inside the functions: the package must import without it.
"""

from __future__ import annotations

import numpy as np

STAGES = ((1, 1), (2, 2), (3, 2), (4, 2))  # (stage, stride of its block 0)
BN_EPS = 1e-5  # flax.linen.BatchNorm's default, as models/resnet.py uses.


def _tensor(a, transpose=None):
  import torch
  a = np.asarray(a, np.float32)
  if transpose is not None:
    a = a.transpose(transpose)
  return torch.from_numpy(np.array(a, order="C"))


def build_module(variables):
  """torch.nn.Module computing the Flax ResNet-18's logits [B, K] from NCHW."""
  import torch
  from torch import nn
  import torch.nn.functional as F

  params = variables["params"]
  stats = variables.get("batch_stats", {})

  class FrozenBatchNorm(nn.Module):
    """y = (x - mean) / sqrt(var + eps) * weight + bias, running stats only."""

    def __init__(self, name):
      super().__init__()
      self.weight = nn.Parameter(_tensor(at(params, name)["scale"]))
      self.bias = nn.Parameter(_tensor(at(params, name)["bias"]))
      s = at(stats, name)
      self.mean = _tensor(s["mean"])[:, None, None]
      self.inv_std = torch.rsqrt(_tensor(s["var"]) + BN_EPS)[:, None, None]

    def forward(self, x):
      return ((x - self.mean) * self.inv_std * self.weight[:, None, None]
              + self.bias[:, None, None])

  def at(tree, name):
    for part in name.split("/"):
      tree = tree[part]
    return tree

  def conv(name, stride, padding):
    k = at(params, name)["kernel"]
    kh, _, cin, cout = k.shape
    m = nn.Conv2d(cin, cout, kh, stride=stride, padding=padding, bias=False)
    m.weight = nn.Parameter(_tensor(k, (3, 2, 0, 1)))
    return m

  def dense(name):
    k = at(params, name)["kernel"]
    m = nn.Linear(k.shape[0], k.shape[1])
    m.weight = nn.Parameter(_tensor(k, (1, 0)))
    m.bias = nn.Parameter(_tensor(at(params, name)["bias"]))
    return m

  class Block(nn.Module):
    def __init__(self, name, stride):
      super().__init__()
      self.conv1 = conv(f"{name}/conv1", stride, 1)
      self.bn1 = FrozenBatchNorm(f"{name}/bn1")
      self.conv2 = conv(f"{name}/conv2", 1, 1)
      self.bn2 = FrozenBatchNorm(f"{name}/bn2")
      self.down = None
      if "downsample_conv" in at(params, name):
        self.down = nn.Sequential(conv(f"{name}/downsample_conv", stride, 0),
                                  FrozenBatchNorm(f"{name}/downsample_bn"))

    def forward(self, x):
      y = F.relu(self.bn1(self.conv1(x)))
      y = self.bn2(self.conv2(y))
      return F.relu((x if self.down is None else self.down(x)) + y)

  class ResNet18(nn.Module):
    def __init__(self):
      super().__init__()
      k = params["stem_conv"]["kernel"]
      self.imagenet = k.shape[0] == 7
      self.stem = conv("stem_conv", 2 if self.imagenet else 1, k.shape[0] // 2)
      self.stem_bn = FrozenBatchNorm("stem_bn")
      self.blocks = nn.Sequential(*[
          Block(f"layer{stage}_{i}", stride0 if i == 0 else 1)
          for stage, stride0 in STAGES for i in range(2)])
      self.hidden = dense("head_hidden")
      self.out = dense("head_out")

    def forward(self, x):
      x = F.relu(self.stem_bn(self.stem(x)))
      if self.imagenet:
        x = F.max_pool2d(x, 3, 2, padding=1)
      h = torch.mean(self.blocks(x), dim=(2, 3))
      return self.out(F.relu(self.hidden(h)))

  return ResNet18()


def nchw(images) -> "torch.Tensor":  # noqa: F821
  """[B, H, W, C] numpy (the JAX model's layout) -> NCHW float32 tensor."""
  import torch
  return torch.from_numpy(np.array(np.asarray(images).transpose(0, 3, 1, 2),
                                   np.float32, order="C"))
