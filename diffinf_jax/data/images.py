"""Reading image files: RGB PNG/JPEG -> uint8 [size, size, 3]."""

from __future__ import annotations

import numpy as np


def load_image(path: str, size: int, missing_hint: str = "") -> np.ndarray:
  """Loads an image file as uint8 RGB [size, size, 3] (bicubic resize).

  Args:
    missing_hint: what the caller's dataset expects, appended to the error
      when the file does not exist.

  Raises:
    FileNotFoundError: the file is missing (names it, plus the hint).
    ValueError: the file is not a readable image.
  """
  from PIL import Image
  try:
    with Image.open(path) as im:
      im = im.convert("RGB")
      if im.size != (size, size):
        im = im.resize((size, size), Image.BICUBIC)
      return np.asarray(im, np.uint8)
  except FileNotFoundError:
    raise FileNotFoundError(
        f"{path}: image missing" + (f"; {missing_hint}" if missing_hint
                                    else "")) from None
  except OSError as e:
    raise ValueError(f"{path}: corrupt or unreadable image ({e})") from e


def load_images(paths, size: int, missing_hint: str = "",
                desc: str = "load images") -> np.ndarray:
  """uint8 [N, size, size, 3] of image files, with progress output."""
  from diffinf_jax import progress
  out = np.empty((len(paths), size, size, 3), np.uint8)
  for i, p in progress.track(enumerate(paths), total=len(paths), desc=desc,
                             unit="image"):
    out[i] = load_image(p, size, missing_hint)
  return out
