"""Input transforms of the guidance networks (linear, hence differentiable).

ArcFace: the fixed FFHQ crop used by most StyleGAN/diffusion editing code
(pSp, e4e, StyleCLIP, DiffusionCLIP): adaptive-average-pool the image to
256x256, keep rows 35:223 and columns 32:220 (188x188), adaptive-average-pool
to 112x112. DiffInf's exact crop is unpublished, so the box is configurable.

Face parsing: as upstream `test.py`: [0, 1] RGB resized to 512x512 (bilinear),
then ImageNet mean/std normalisation.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from diffinf_jax.models.guidance import resize

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass(frozen=True)
class FaceCrop:
  """A crop box on a square canvas, then a resize to `out_size`.

  Attributes:
    canvas: side the image is first brought to (0: keep the input size).
    box: (top, left, bottom, right) in canvas pixels, end-exclusive
      (None: the whole canvas).
    out_size: (H, W) of the result.
    mode: 'adaptive_avg' (torch AdaptiveAvgPool2d, as pSp) or 'bilinear'
      (align_corners=False) for both resizes.
  """
  canvas: int = 256
  box: tuple[int, int, int, int] | None = (35, 32, 223, 220)
  out_size: tuple[int, int] = (112, 112)
  mode: str = "adaptive_avg"

  def __post_init__(self):
    if self.mode not in ("adaptive_avg", "bilinear"):
      raise ValueError(f"FaceCrop.mode must be adaptive_avg | bilinear, got "
                       f"{self.mode!r}")


FFHQ_ARCFACE_CROP = FaceCrop()


def crop_preset(name: str, out_size=(112, 112)) -> FaceCrop:
  """'ffhq' (the fixed 188-px box at 256) or 'full' (whole image resized)."""
  out_size = tuple(int(v) for v in out_size)
  if name == "ffhq":
    return dataclasses.replace(FFHQ_ARCFACE_CROP, out_size=out_size)
  if name == "full":
    return FaceCrop(canvas=0, box=None, out_size=out_size)
  raise ValueError(f"unknown face crop {name!r}; choose ffhq | full")


def _axis_matrix(n_in: int, canvas: int, lo: int, hi: int, n_out: int,
                 mode: str) -> np.ndarray:
  def rs(a, b):
    if a == b:
      return np.eye(a, dtype=np.float32)
    if mode == "adaptive_avg":
      return resize.adaptive_avg_matrix(a, b)
    return resize.bilinear_matrix(a, b, False)
  to_canvas = rs(n_in, canvas)                      # [canvas, n_in]
  crop = to_canvas[lo:hi]                           # [hi - lo, n_in]
  return rs(hi - lo, n_out) @ crop                  # [n_out, n_in]


def face_crop(x: jax.Array, crop: FaceCrop = FFHQ_ARCFACE_CROP) -> jax.Array:
  """Crops and resizes x [B, H, W, C] -> [B, out_h, out_w, C] (any value range).

  Raises:
    ValueError: for a non-square input with a canvas, or a box off the canvas.
  """
  _, h, w, _ = x.shape
  canvas_h = canvas_w = crop.canvas
  if crop.canvas == 0:
    canvas_h, canvas_w = h, w
  elif h != w:
    raise ValueError(f"face crop expects square images, got {h}x{w}")
  top, left, bottom, right = crop.box or (0, 0, canvas_h, canvas_w)
  if not (0 <= top < bottom <= canvas_h and 0 <= left < right <= canvas_w):
    raise ValueError(f"crop box {crop.box} lies outside the {canvas_h}x"
                     f"{canvas_w} canvas")
  mh = _axis_matrix(h, canvas_h, top, bottom, crop.out_size[0], crop.mode)
  mw = _axis_matrix(w, canvas_w, left, right, crop.out_size[1], crop.mode)
  return resize.apply_separable(x, mh, mw)


def arcface_input(x: jax.Array, crop: FaceCrop = FFHQ_ARCFACE_CROP):
  """FFHQ-aligned faces [B, H, W, 3] in [-1, 1] -> ArcFace input in [-1, 1]."""
  if x.ndim != 4 or x.shape[-1] != 3:
    raise ValueError(f"arcface_input expects [B, H, W, 3], got {x.shape}")
  return face_crop(x, crop)


def parsing_input(x: jax.Array, size=(512, 512)) -> jax.Array:
  """Images [B, H, W, 3] in [-1, 1] -> BiSeNet input [B, size, 3].

  (x + 1) / 2, bilinear resize (antialiased when shrinking, like PIL), then
  ImageNet normalisation as upstream `test.py`.
  """
  if x.ndim != 4 or x.shape[-1] != 3:
    raise ValueError(f"parsing_input expects [B, H, W, 3], got {x.shape}")
  x01 = (x + 1.0) * 0.5
  size = tuple(int(v) for v in size)
  if tuple(x.shape[1:3]) != size:
    x01 = jax.image.resize(x01, (x.shape[0], *size, 3), "bilinear",
                           antialias=True)
  mean = jnp.asarray(IMAGENET_MEAN, x.dtype)
  std = jnp.asarray(IMAGENET_STD, x.dtype)
  return (x01 - mean) / std
