"""Resizes that reproduce PyTorch's `F.interpolate` / adaptive pooling exactly.

`jax.image.resize` has no `align_corners=True` mode and antialiases on
downsampling, so the ports of upstream PyTorch networks build explicit
separable interpolation matrices instead (numpy, at trace time) and apply them
with an einsum. Everything here is linear in the image, hence differentiable.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np


@functools.lru_cache(maxsize=256)
def bilinear_matrix(n_in: int, n_out: int, align_corners: bool) -> np.ndarray:
  """[n_out, n_in] matrix of 1-D linear interpolation as in `F.interpolate`.

  align_corners=True: source coordinate = i * (n_in - 1) / (n_out - 1).
  align_corners=False: source = (i + 0.5) * n_in / n_out - 0.5, clamped at 0
  (PyTorch's half-pixel rule, no antialiasing).
  """
  i = np.arange(n_out, dtype=np.float64)
  if align_corners:
    scale = (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    src = i * scale
  else:
    src = np.maximum((i + 0.5) * (n_in / n_out) - 0.5, 0.0)
  lo = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
  hi = np.minimum(lo + 1, n_in - 1)
  frac = src - lo
  m = np.zeros((n_out, n_in), np.float64)
  np.add.at(m, (np.arange(n_out), lo), 1.0 - frac)
  np.add.at(m, (np.arange(n_out), hi), frac)
  return m.astype(np.float32)


@functools.lru_cache(maxsize=256)
def adaptive_avg_matrix(n_in: int, n_out: int) -> np.ndarray:
  """[n_out, n_in] matrix of `nn.AdaptiveAvgPool` along one axis.

  Bin i covers [floor(i * n_in / n_out), ceil((i + 1) * n_in / n_out)); for
  n_out > n_in this is a nearest-neighbour upsampling.
  """
  m = np.zeros((n_out, n_in), np.float64)
  for i in range(n_out):
    start = (i * n_in) // n_out
    end = -((-(i + 1) * n_in) // n_out)
    m[i, start:end] = 1.0 / (end - start)
  return m.astype(np.float32)


@functools.lru_cache(maxsize=256)
def nearest_index(n_in: int, n_out: int) -> np.ndarray:
  """Source indices of PyTorch's legacy `mode='nearest'`: floor(i * in / out)."""
  return np.minimum((np.arange(n_out) * n_in) // n_out, n_in - 1)


def apply_separable(x: jax.Array, mat_h: np.ndarray,
                    mat_w: np.ndarray) -> jax.Array:
  """Applies [H', H] and [W', W] matrices to x [B, H, W, C] -> [B, H', W', C].

  Runs at HIGHEST precision so that the result does not depend on the
  accelerator's default (TF32/bf16) matmul passes.
  """
  hp = jax.lax.Precision.HIGHEST
  mh = jnp.asarray(mat_h, x.dtype)
  mw = jnp.asarray(mat_w, x.dtype)
  y = jnp.einsum("oh,bhwc->bowc", mh, x, precision=hp)
  return jnp.einsum("pw,bowc->bopc", mw, y, precision=hp)


def resize_bilinear(x: jax.Array, size: tuple[int, int],
                    align_corners: bool = True) -> jax.Array:
  """Bilinear resize of x [B, H, W, C] to [B, size[0], size[1], C].

  Matches `F.interpolate(x, size, mode='bilinear', align_corners=...)` (no
  antialiasing) to float32 rounding.
  """
  _, h, w, _ = x.shape
  return apply_separable(x, bilinear_matrix(h, size[0], align_corners),
                         bilinear_matrix(w, size[1], align_corners))


def adaptive_avg_pool(x: jax.Array, size: tuple[int, int]) -> jax.Array:
  """`nn.AdaptiveAvgPool2d(size)` on x [B, H, W, C] -> [B, size[0], size[1], C]."""
  _, h, w, _ = x.shape
  return apply_separable(x, adaptive_avg_matrix(h, size[0]),
                         adaptive_avg_matrix(w, size[1]))


def resize_nearest(x: jax.Array, size: tuple[int, int]) -> jax.Array:
  """`F.interpolate(x, size, mode='nearest')` on x [B, H, W, C] (a gather)."""
  _, h, w, _ = x.shape
  x = jnp.take(x, jnp.asarray(nearest_index(h, size[0])), axis=1)
  return jnp.take(x, jnp.asarray(nearest_index(w, size[1])), axis=2)
