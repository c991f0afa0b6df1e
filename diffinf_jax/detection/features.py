"""Label-free feature blocks for the cheap cross-fitted model.

The cross-fitted logistic model needs features that carry the class but were
never fit to the task labels (else held-out rows leak through the features):
raw pixels, and the activations of a frozen network trained on something
else (on the demo: the LPIPS VGG16 trunk, trained on ImageNet). These helpers
turn images and activation maps into [N, D] blocks; running the frozen
network is the caller's business.
"""

from __future__ import annotations

import numpy as np


def flatten_pixels(images: np.ndarray) -> np.ndarray:
  """[N, H, W, C] images (any range) -> [N, H*W*C] float32."""
  images = np.asarray(images)
  if images.ndim != 4:
    raise ValueError(f"images must be [N, H, W, C]; got {images.shape}")
  return images.reshape(images.shape[0], -1).astype(np.float32)


def grid_pool(maps, grid: int):
  """Average-pools [N, h, w, C] maps to a grid x grid layout, flattened.

  Global pooling (grid 1) throws away where a feature fires; a 2 x 2 grid
  keeps the coarse layout (mouth below, hair above), which the demo's
  expression task needs. Works on numpy and jax arrays.

  Args:
    maps: [N, h, w, C] activations, h and w divisible by `grid`.
    grid: cells per side.

  Returns:
    [N, grid * grid * C].

  Example:
    >>> grid_pool(np.arange(16.0).reshape(1, 4, 4, 1), 2).tolist()
    [[2.5, 4.5, 10.5, 12.5]]
  """
  n, h, w, c = maps.shape
  if h % grid or w % grid:
    raise ValueError(f"maps of {h}x{w} cannot be pooled to a {grid}x{grid} "
                     "grid")
  cells = maps.reshape(n, grid, h // grid, grid, w // grid, c).mean((2, 4))
  return cells.reshape(n, grid * grid * c)
