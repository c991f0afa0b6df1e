"""Procedural face renderer: the embedded demo dataset (no external assets).

Every image is drawn in numpy from a small set of parameters with known ground
truth, so the demo shows the whole method without downloading anything:

* identity (fixed per identity id): face width/height, skin tone, eye spacing
  and size, nose size, hair colour and style, background colour;
* age (continuous, 0-80 years): children have rounder faces, bigger eyes and
  smaller noses; wrinkles and grey hair rise with age, hairlines recede;
* expression (happy / neutral / surprised / sad): mouth curvature and opening,
  brow height and tilt, eye openness;
* nuisance: small rotation, scale and shift jitter, a lighting gradient and
  pixel noise.

Each image comes with a per-pixel parsing mask (PARTS) and an identity id.
Images are rendered at twice the output size and box-filtered down (masks take
the majority part), so edges are anti-aliased.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os

import numpy as np

PARTS = ("background", "skin", "brows", "eyes", "nose", "mouth", "hair")
EXPRESSION_NAMES = ("happy", "neutral", "surprised", "sad")
RENDERER_VERSION = 1

# Expression -> (mouth curvature, mouth opening, brow raise, brow tilt, eye
# openness). Curvature > 0 lifts the mouth corners (a smile).
_EXPRESSION_PARAMS = {
    0: (0.55, 0.10, 0.02, 0.00, 0.65),    # happy: smile, slight squint
    1: (0.00, 0.00, 0.00, 0.00, 1.00),    # neutral
    2: (0.00, 0.55, 0.10, 0.00, 1.45),    # surprised: open mouth, raised brows
    3: (-0.45, 0.00, -0.02, 0.35, 0.80),  # sad: corners down, inner brows up
}


@dataclasses.dataclass(frozen=True)
class Identity:
  """Appearance that stays fixed for one identity id."""
  face_w: float
  face_h: float
  skin: np.ndarray          # [3] RGB in [0, 1]
  eye_dx: float
  eye_size: float
  nose_size: float
  hair: np.ndarray          # [3] RGB in [0, 1]
  hair_style: int           # 0 short, 1 long, 2 fringe
  background: np.ndarray    # [3] RGB in [0, 1]


def sample_identities(num: int, seed: int) -> list[Identity]:
  rng = np.random.default_rng(seed)
  skins = np.array([[0.96, 0.80, 0.69], [0.87, 0.67, 0.52], [0.70, 0.50, 0.36],
                    [0.48, 0.33, 0.23], [0.99, 0.87, 0.77]])
  hairs = np.array([[0.10, 0.07, 0.05], [0.35, 0.22, 0.10], [0.75, 0.58, 0.30],
                    [0.55, 0.20, 0.08], [0.20, 0.15, 0.12]])
  out = []
  for _ in range(num):
    skin = np.clip(skins[rng.integers(len(skins))] + rng.normal(0, 0.03, 3), 0, 1)
    hair = np.clip(hairs[rng.integers(len(hairs))] + rng.normal(0, 0.03, 3), 0, 1)
    out.append(Identity(
        face_w=rng.uniform(0.50, 0.62), face_h=rng.uniform(0.64, 0.76),
        skin=skin, eye_dx=rng.uniform(0.20, 0.27),
        eye_size=rng.uniform(0.065, 0.085), nose_size=rng.uniform(0.8, 1.2),
        hair=hair, hair_style=int(rng.integers(3)),
        background=rng.uniform(0.15, 0.85, 3)))
  return out


def _ellipse(u, v, cx, cy, rx, ry):
  return ((u - cx) / rx) ** 2 + ((v - cy) / ry) ** 2 <= 1.0


def _paint(img, parts, where, color, part=None):
  img[where] = color
  if part is not None:
    parts[where] = part


def render_face(ident: Identity, age: float, expression: int,
                rng: np.random.Generator, size: int
                ) -> tuple[np.ndarray, np.ndarray]:
  """Renders one face.

  Args:
    ident: identity appearance.
    age: years, 0-80.
    expression: class in 0..3 (EXPRESSION_NAMES).
    rng: source of the per-image nuisance and expression jitter.
    size: output height = width in pixels.

  Returns:
    image: [size, size, 3] float32 in [0, 1]; parts: [size, size] int32 in
    0..len(PARTS)-1.
  """
  s2 = 2 * size
  child = float(np.clip(1.0 - age / 18.0, 0.0, 1.0))   # 1 at birth, 0 at 18
  old = float(np.clip((age - 35.0) / 40.0, 0.0, 1.0))  # greying and wrinkles
  # Nuisance: pose (roll), scale and shift jitter.
  angle = rng.normal(0, 0.06)
  scale = rng.uniform(0.92, 1.08)
  shift = rng.normal(0, 0.03, 2)
  lin = (np.arange(s2) + 0.5) / s2 * 2 - 1
  y, x = np.meshgrid(lin, lin, indexing="ij")
  x, y = x - shift[0], y - shift[1]
  c, s = np.cos(angle), np.sin(angle)
  u = (c * x + s * y) / scale
  v = (-s * x + c * y) / scale

  img = np.empty((s2, s2, 3), np.float32)
  img[:] = ident.background
  parts = np.zeros((s2, s2), np.int32)

  # Children: rounder, slightly smaller faces.
  fw = ident.face_w * (1.0 + 0.10 * child)
  fh = ident.face_h * (1.0 - 0.12 * child)
  fcy = 0.08
  grey = 0.85 * old ** 0.8
  hair_col = (1 - grey) * ident.hair + grey * np.array([0.78, 0.78, 0.80])

  # Hair behind the face (long style falls to the shoulders).
  back = _ellipse(u, v, 0, fcy - 0.12, fw * 1.12, fh * 0.98)
  if ident.hair_style == 1:
    back |= (np.abs(u) < fw * 1.12) & (v > fcy - 0.2) & (v < fcy + fh * 1.05)
  _paint(img, parts, back, hair_col, 6)

  face = _ellipse(u, v, 0, fcy, fw, fh)
  _paint(img, parts, face, ident.skin, 1)

  # Hairline: lower with a fringe, receding with age.
  hairline = fcy - fh * (0.55 - 0.25 * (ident.hair_style == 2)) - 0.12 * old
  cap = face & (v < hairline + 0.08 * u ** 2 / max(fw, 1e-3))
  _paint(img, parts, cap, hair_col, 6)

  skin_dark = ident.skin * 0.75
  # Wrinkles: forehead lines and crow's feet, drawn on skin only.
  if old > 0.05:
    strength = min(1.0, 1.6 * old)
    for k in range(3):
      wy = hairline + 0.07 + 0.05 * k
      line = face & ~cap & (np.abs(v - wy - 0.04 * u ** 2) < 0.007) & (
          np.abs(u) < fw * 0.55)
      img[line] = (1 - strength) * img[line] + strength * skin_dark
    for side in (-1, 1):
      for k in range(2):
        cx = side * (ident.eye_dx + 0.13)
        line = face & (np.abs((v - (fcy - 0.05 + 0.04 * k)) -
                              0.5 * side * (u - cx)) < 0.006) & (
            np.abs(u - cx) < 0.04)
        img[line] = (1 - strength) * img[line] + strength * skin_dark

  curv, opening, brow_raise, brow_tilt, eye_open = _EXPRESSION_PARAMS[expression]
  # Per-image variation of the expression's intensity.
  intensity = rng.uniform(0.75, 1.25)
  eye_y = fcy - 0.10
  eye_r = ident.eye_size * (1.0 + 0.45 * child)
  eye_ry = eye_r * float(np.clip(eye_open * intensity ** (eye_open > 1), 0.3, 1.8))
  for side in (-1, 1):
    cx = side * ident.eye_dx
    eye = _ellipse(u, v, cx, eye_y, eye_r * 1.25, eye_ry * 0.9)
    _paint(img, parts, eye, np.array([0.96, 0.96, 0.94]), 3)
    pupil = eye & _ellipse(u, v, cx, eye_y, eye_r * 0.6, eye_r * 0.6)
    _paint(img, parts, pupil, np.array([0.12, 0.09, 0.07]), 3)
    # Brows: height and inner-end tilt follow the expression.
    by = eye_y - eye_r * 1.5 - 0.03 - brow_raise * intensity
    rel = (u - cx) * side  # > 0 towards the outside of the face
    brow_line = by - brow_tilt * intensity * (0.5 * eye_r * 2 - rel) * 0.8
    brow = (np.abs(v - brow_line) < 0.018 + 0.004 * (1 - child)) & (
        np.abs(u - cx) < eye_r * 1.8) & face
    _paint(img, parts, brow, hair_col * 0.7, 2)

  # Nose: a small darker triangle, longer in adults.
  nose_len = 0.12 * ident.nose_size * (1.0 - 0.35 * child)
  ny0 = fcy - 0.02
  t = (v - ny0) / nose_len
  nose = (t > 0) & (t < 1) & (np.abs(u) < 0.035 * ident.nose_size * (0.4 + t))
  _paint(img, parts, nose & face, ident.skin * 0.82, 4)

  # Mouth: a parabola whose corners rise (happy) or fall (sad); an open
  # ellipse when surprised.
  my = fcy + 0.28 - 0.03 * child
  half = 0.20 * (1.0 - 0.2 * child)
  curve = my - curv * intensity * (u ** 2 / half ** 2 - 0.4) * 0.15
  lips = (np.abs(v - curve) < 0.03) & (np.abs(u) < half)
  lip_col = np.array([0.72, 0.28, 0.30]) * (0.8 + 0.2 * ident.skin.mean())
  _paint(img, parts, lips & face, lip_col, 5)
  if opening > 0:
    hole = _ellipse(u, v, 0, my + 0.01, half * (0.45 + 0.3 * opening),
                    0.02 + 0.09 * opening * intensity)
    _paint(img, parts, hole & face, lip_col, 5)
    inner = _ellipse(u, v, 0, my + 0.01, half * (0.33 + 0.3 * opening),
                     0.012 + 0.075 * opening * intensity)
    _paint(img, parts, inner & face, np.array([0.25, 0.05, 0.07]), 5)

  # Lighting gradient and pixel noise.
  theta = rng.uniform(0, 2 * np.pi)
  light = 1.0 + rng.uniform(0.0, 0.25) * (np.cos(theta) * x + np.sin(theta) * y)
  img *= light[..., None]

  image = img.reshape(size, 2, size, 2, 3).mean(axis=(1, 3))
  image += rng.normal(0, 0.015, image.shape)
  onehot = np.eye(len(PARTS), dtype=np.int32)[parts]
  parts_small = onehot.reshape(size, 2, size, 2, len(PARTS)).sum(axis=(1, 3))
  return (np.clip(image, 0, 1).astype(np.float32),
          parts_small.argmax(-1).astype(np.int32))


def age_class(age: np.ndarray, bins) -> np.ndarray:
  """Integer age -> bin index; -1 for ages in the excluded gaps."""
  age = np.floor(np.asarray(age)).astype(np.int64)
  out = np.full(age.shape, -1, np.int64)
  for k, (lo, hi) in enumerate(bins):
    out[(age >= lo) & (age <= hi)] = k
  return out


def _sample_ages(rng, n, bins):
  """Ages spread evenly over the bins (uniform inside a bin, capped at 80)."""
  cls = rng.integers(0, len(bins), n)
  lo = np.array([b[0] for b in bins], float)[cls]
  hi = np.minimum(np.array([b[1] for b in bins], float), 80.0)[cls]
  return rng.uniform(lo, hi + 1.0 - 1e-6)


def render_dataset(num_images: int, num_identities: int, size: int, seed: int,
                   age_bins) -> dict[str, np.ndarray]:
  """Renders the demo dataset deterministically from `seed`.

  Returns:
    dict with image [N, size, size, 3] float32 in [-1, 1], parsing [N, size,
    size] int32, identity [N], age [N] float32 (years), age_label [N],
    expression_label [N], index [N] (0..N-1).
  """
  if size not in (16, 32, 64, 128):
    raise ValueError(f"demo image size {size}: use 16, 32, 64 or 128")
  rng = np.random.default_rng(seed)
  identities = sample_identities(num_identities, seed + 1)
  ident_ids = rng.integers(0, num_identities, num_images)
  ages = _sample_ages(rng, num_images, age_bins)
  expressions = rng.integers(0, len(EXPRESSION_NAMES), num_images)
  images = np.empty((num_images, size, size, 3), np.float32)
  parsing = np.empty((num_images, size, size), np.int32)
  for i in range(num_images):
    image_rng = np.random.default_rng([seed, i])
    img, parts = render_face(identities[ident_ids[i]], ages[i],
                             int(expressions[i]), image_rng, size)
    images[i] = img * 2.0 - 1.0
    parsing[i] = parts
  return {
      "image": images, "parsing": parsing,
      "identity": ident_ids.astype(np.int32),
      "age": ages.astype(np.float32),
      "age_label": age_class(ages, age_bins).astype(np.int32),
      "expression_label": expressions.astype(np.int32),
      "index": np.arange(num_images, dtype=np.int32),
  }


def cache_key(num_images, num_identities, size, seed, age_bins) -> str:
  spec = json.dumps([RENDERER_VERSION, num_images, num_identities, size, seed,
                     [list(b) for b in age_bins]])
  return hashlib.sha256(spec.encode()).hexdigest()[:16]


def default_cache_dir() -> str:
  base = os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache"))
  return os.path.join(base, "diffinf_jax", "demo")


def load_or_render(num_images: int, num_identities: int, size: int, seed: int,
                   age_bins, cache_dir: str = "") -> dict[str, np.ndarray]:
  """Renders the dataset once and caches it as .npz (keyed by its parameters)."""
  from diffinf_jax import fileio
  cache_dir = cache_dir or default_cache_dir()
  key = cache_key(num_images, num_identities, size, seed, age_bins)
  path = os.path.join(cache_dir, f"demo_{size}px_{key}.npz")
  if os.path.isfile(path):
    try:
      return fileio.load_npz(path, required=("image", "parsing", "index"))
    except (ValueError, KeyError):
      os.remove(path)  # a corrupt cache is re-rendered, not trusted
  data = render_dataset(num_images, num_identities, size, seed, age_bins)
  try:
    fileio.save_npz(path, **data)
  except OSError:
    pass  # a read-only cache dir only costs a re-render next time
  return data
