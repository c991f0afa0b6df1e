"""DiffAE building blocks (BeatGANs / ADM style), NHWC.

Sub-module names equal upstream's PyTorch names (`in_layers.0`,
`emb_layers.1`, ...) so the converter's mapping is the identity on names.
Upstream details reproduced on purpose (see shared reference, section 3):
GroupNorm with min(32, C) groups in float32; time modulation
h * (1 + scale) + shift before the z modulation h * (1 + s_z); resampling
between SiLU and the first conv; legacy per-head [q | k | v] channel layout
with q and k each scaled by c^-1/4; nearest x2 up and 2x2 average-pool down.
"""

from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp


def group_norm(channels: int, name: str) -> nn.GroupNorm:
  return nn.GroupNorm(num_groups=min(32, channels), epsilon=1e-5,
                      dtype=jnp.float32, name=name)


_DN = ("NHWC", "HWIO", "NHWC")


def _conv(x, kernel, padding, precision):
  return jax.lax.conv_general_dilated(x, kernel, (1, 1), padding,
                                      dimension_numbers=_DN,
                                      precision=precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv_same(x, kernel, padding, precision=None):
  """Stride-1 NHWC/HWIO convolution whose input gradient is a plain conv.

  Why: XLA:CPU lowers the default transpose of a convolution (kernel
  reversal + in/out swap folded into dimension numbers) to a slow generic
  loop when it sits inside a `lax.scan` (measured 18-36x slower than the
  same ops unrolled), which made gradients through a scanned DDIM decode
  unusable on CPU. Spelling the input gradient as a conv with an explicitly
  flipped and transposed kernel keeps it on the fast path. Values are
  identical to `lax.conv_general_dilated`.
  """
  return _conv(x, kernel, padding, precision)


def _conv_fwd(x, kernel, padding, precision):
  return _conv(x, kernel, padding, precision), (x, kernel)


def _conv_bwd(padding, precision, res, g):
  x, kernel = res
  kh, kw = kernel.shape[:2]
  flipped = jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2)
  # Stride 1: the input gradient is a correlation of g with the flipped
  # kernel, padded by (k - 1 - lo, k - 1 - hi).
  pad_t = ((kh - 1 - padding[0][0], kh - 1 - padding[0][1]),
           (kw - 1 - padding[1][0], kw - 1 - padding[1][1]))
  gx = _conv(g, flipped, pad_t, precision)
  _, vjp = jax.vjp(lambda k: _conv(x, k, padding, precision), kernel)
  return gx, vjp(g)[0]


conv_same.defvjp(_conv_fwd, _conv_bwd)


def _flax_conv(inputs, kernel, strides, padding, lhs_dilation=None,
               rhs_dilation=None, dimension_numbers=None,
               feature_group_count=1, precision=None):
  """`conv_general_dilated` drop-in for nn.Conv (stride 1, no dilation)."""
  if (tuple(strides) != (1, 1) or feature_group_count != 1
      or any(d not in (None, (1, 1)) for d in (
          lhs_dilation and tuple(lhs_dilation),
          rhs_dilation and tuple(rhs_dilation)))):
    raise ValueError("conv_same supports stride 1, no dilation, no groups")
  padding = tuple((int(lo), int(hi)) for lo, hi in padding)
  return conv_same(inputs, kernel, padding, precision)


def conv(features: int, size: int, name: str) -> nn.Conv:
  """'SAME' stride-1 conv (torch padding (size - 1) / 2), fast gradients."""
  p = (size - 1) // 2
  return nn.Conv(features, (size, size), padding=((p, p), (p, p)),
                 conv_general_dilated=_flax_conv, name=name)


def conv3(features: int, name: str) -> nn.Conv:
  return conv(features, 3, name)


def timestep_embedding(t: jnp.ndarray, dim: int) -> jnp.ndarray:
  """Sinusoid [B, dim]: cosines first, frequencies exp(-ln(1e4) k / half)."""
  half = dim // 2
  freqs = jnp.exp(-math.log(10000.0) * jnp.arange(half, dtype=jnp.float32)
                  / half)
  args = t.astype(jnp.float32)[:, None] * freqs[None]
  emb = jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)
  if dim % 2:
    emb = jnp.pad(emb, ((0, 0), (0, 1)))
  return emb


def upsample(x):
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def downsample(x):
  b, h, w, c = x.shape
  return x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


class ResBlock(nn.Module):
  """Residual block; conditioned on (emb, z_sem) unless `conditioned=False`.

  Attributes:
    out_channels: C_out.
    conditioned: UNet blocks (True) have emb/cond/out layers; the semantic
      encoder's (False) are skip(x) + conv(SiLU(GN(x))).
    up / down: nearest x2 / 2x2 average pooling inside the block.
  """
  out_channels: int
  conditioned: bool = True
  up: bool = False
  down: bool = False
  dropout: float = 0.0

  @nn.compact
  def __call__(self, x, emb=None, cond=None, *, train: bool = False):
    c_in = x.shape[-1]
    for c in (c_in, self.out_channels):
      if c > 32 and c % 32:
        raise ValueError(
            f"DiffAE block {self.name}: {c} channels; GroupNorm uses "
            "min(32, C) groups as upstream, so channel counts (including the "
            "decoder's [h, skip] concatenations) above 32 must be multiples "
            "of 32: change model_channels / channel_mult")
    h = nn.silu(group_norm(c_in, "in_layers.0")(x))
    if self.up:
      h, x = upsample(h), upsample(x)
    elif self.down:
      h, x = downsample(h), downsample(x)
    h = conv3(self.out_channels, "in_layers.2")(h)
    if self.conditioned:
      scale_shift = nn.Dense(2 * self.out_channels, name="emb_layers.1")(
          nn.silu(emb))
      scale, shift = jnp.split(scale_shift[:, None, None, :], 2, axis=-1)
      s_z = nn.Dense(self.out_channels, name="cond_emb_layers.1")(
          nn.silu(cond))[:, None, None, :]
      h = group_norm(self.out_channels, "out_layers.0")(h)
      h = h * (1 + scale) + shift
      h = h * (1 + s_z)
      h = nn.Dropout(self.dropout, deterministic=not train)(nn.silu(h))
      h = conv3(self.out_channels, "out_layers.3")(h)
    if c_in != self.out_channels:
      x = conv(self.out_channels, 1, "skip_connection")(x)
    return x + h


class AttentionBlock(nn.Module):
  """Self-attention over all positions (row-major tokens), legacy QKV order."""
  num_heads: int = 1

  @nn.compact
  def __call__(self, x):
    b, hgt, wid, c = x.shape
    heads = self.num_heads
    ch = c // heads
    tokens = group_norm(c, "norm")(x).reshape(b, hgt * wid, c)
    qkv = nn.Dense(3 * c, name="qkv")(tokens)
    qkv = qkv.reshape(b, hgt * wid, heads, 3 * ch)
    q, k, v = jnp.split(qkv, 3, axis=-1)                 # [B, N, heads, ch]
    scale = ch ** -0.25
    logits = jnp.einsum("bthc,bshc->bhts", q * scale, k * scale)
    weights = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(
        x.dtype)
    out = jnp.einsum("bhts,bshc->bthc", weights, v).reshape(b, hgt * wid, c)
    out = nn.Dense(c, name="proj_out")(out)
    return x + out.reshape(b, hgt, wid, c)
