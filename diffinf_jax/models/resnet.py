"""ResNet-18 classifier with a two-layer head (the DiffInf baseline learner).

  logits, aux = ResNet18(num_classes=3)(x, train=False)

x: [B, H, W, 3] float32 in [-1, 1]. aux['features'] is the penultimate
feature g(x): the head's hidden activation after ReLU (before dropout),
[B, head_hidden]; aux['pooled'] is the global-average-pooled trunk output
[B, 512 * width_multiplier]. Only standard nn.Conv / nn.BatchNorm / nn.Dense
layers with fixed names are used, so the influence engine can intercept them
and converters can name them.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp


class BasicBlock(nn.Module):
  """Two 3x3 convolutions with a residual connection (He et al. 2016)."""
  filters: int
  strides: int = 1
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, *, train: bool):
    norm = lambda name: nn.BatchNorm(use_running_average=not train,
                                     momentum=0.9, epsilon=1e-5,
                                     dtype=self.dtype, name=name)
    y = nn.Conv(self.filters, (3, 3), self.strides, padding=((1, 1), (1, 1)),
                use_bias=False, dtype=self.dtype, name="conv1")(x)
    y = nn.relu(norm("bn1")(y))
    y = nn.Conv(self.filters, (3, 3), 1, padding=((1, 1), (1, 1)),
                use_bias=False, dtype=self.dtype, name="conv2")(y)
    y = norm("bn2")(y)
    if self.strides != 1 or x.shape[-1] != self.filters:
      x = nn.Conv(self.filters, (1, 1), self.strides, use_bias=False,
                  dtype=self.dtype, name="downsample_conv")(x)
      x = norm("downsample_bn")(x)
    return nn.relu(x + y)


class ResNet18(nn.Module):
  """ResNet-18 trunk + Dense(head_hidden) -> ReLU -> Dropout -> Dense(K).

  Attributes:
    num_classes: K.
    width_multiplier: scales the 64-128-256-512 channel widths.
    stem: 'imagenet' (7x7 stride-2 conv + 3x3 max-pool) or 'cifar' (3x3
      stride-1 conv, no pool) for small images.
    head_hidden: width of the head's hidden layer (the feature g(x)).
    dropout: dropout rate before the output layer (training only).
  """
  num_classes: int
  width_multiplier: float = 1.0
  stem: str = "imagenet"
  head_hidden: int = 256
  dropout: float = 0.0
  dtype: jnp.dtype = jnp.float32

  def _width(self, c: int) -> int:
    return max(1, int(round(c * self.width_multiplier)))

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    x = x.astype(self.dtype)
    w0 = self._width(64)
    if self.stem == "imagenet":
      x = nn.Conv(w0, (7, 7), 2, padding=((3, 3), (3, 3)), use_bias=False,
                  dtype=self.dtype, name="stem_conv")(x)
    elif self.stem == "cifar":
      x = nn.Conv(w0, (3, 3), 1, padding=((1, 1), (1, 1)), use_bias=False,
                  dtype=self.dtype, name="stem_conv")(x)
    else:
      raise ValueError(f"model.stem={self.stem!r}: use 'imagenet' or 'cifar'")
    x = nn.BatchNorm(use_running_average=not train, momentum=0.9,
                     epsilon=1e-5, dtype=self.dtype, name="stem_bn")(x)
    x = nn.relu(x)
    if self.stem == "imagenet":
      x = nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
    for stage, (c, stride) in enumerate(((64, 1), (128, 2), (256, 2),
                                         (512, 2))):
      for block in range(2):
        x = BasicBlock(self._width(c), stride if block == 0 else 1,
                       dtype=self.dtype,
                       name=f"layer{stage + 1}_{block}")(x, train=train)
    pooled = jnp.mean(x, axis=(1, 2))
    h = nn.relu(nn.Dense(self.head_hidden, dtype=self.dtype,
                         name="head_hidden")(pooled))
    features = h
    h = nn.Dropout(self.dropout, deterministic=not train)(h)
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name="head_out")(h)
    return logits.astype(jnp.float32), {"features": features,
                                         "pooled": pooled}
