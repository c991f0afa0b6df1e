"""ArcFace crop and parsing normalisation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffinf_jax.models.guidance import transforms


def test_ffhq_crop_matches_psp_recipe_on_256():
  rng = np.random.default_rng(0)
  x = rng.uniform(-1, 1, (1, 256, 256, 3)).astype(np.float32)
  got = np.asarray(transforms.arcface_input(x))
  assert got.shape == (1, 112, 112, 3)
  box = x[:, 35:223, 32:220]                      # 188 x 188
  # AdaptiveAvgPool 188 -> 112: bins [floor(i*188/112), ceil((i+1)*188/112)).
  i = 50
  r0, r1 = (i * 188) // 112, -((-(i + 1) * 188) // 112)
  c0, c1 = (i * 188) // 112, -((-(i + 1) * 188) // 112)
  np.testing.assert_allclose(got[0, i, i], box[0, r0:r1, c0:c1].mean((0, 1)),
                             atol=1e-5)


def test_ffhq_crop_on_128_equals_upsampled_256():
  rng = np.random.default_rng(1)
  x = rng.uniform(-1, 1, (2, 128, 128, 3)).astype(np.float32)
  up = np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)  # adaptive pool 128->256
  np.testing.assert_allclose(np.asarray(transforms.arcface_input(x)),
                             np.asarray(transforms.arcface_input(up)),
                             atol=1e-5)


def test_crop_is_differentiable_and_range_preserving():
  x = jnp.full((1, 64, 64, 3), 0.3)
  crop = transforms.crop_preset("full", (32, 32))
  np.testing.assert_allclose(transforms.face_crop(x, crop), 0.3, atol=1e-6)
  g = jax.grad(lambda v: transforms.arcface_input(v).sum())(x)
  assert float(jnp.abs(g).sum()) > 0


def test_parsing_input_normalises_like_upstream():
  x = jnp.zeros((1, 16, 16, 3))          # mid grey = 0.5 in [0, 1]
  y = np.asarray(transforms.parsing_input(x, (32, 32)))
  assert y.shape == (1, 32, 32, 3)
  want = (0.5 - np.array(transforms.IMAGENET_MEAN)) / np.array(
      transforms.IMAGENET_STD)
  np.testing.assert_allclose(y[0, 5, 7], want, atol=1e-5)


def test_bad_inputs():
  with pytest.raises(ValueError, match="square"):
    transforms.arcface_input(jnp.zeros((1, 64, 48, 3)))
  with pytest.raises(ValueError, match=r"\[B, H, W, 3\]"):
    transforms.parsing_input(jnp.zeros((1, 64, 64)))
  with pytest.raises(ValueError, match="outside"):
    transforms.face_crop(jnp.zeros((1, 64, 64, 3)),
                         transforms.FaceCrop(canvas=64, box=(0, 0, 80, 64)))
