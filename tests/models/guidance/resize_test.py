"""Resizes against PyTorch's F.interpolate / AdaptiveAvgPool2d semantics."""

import numpy as np
import pytest

from diffinf_jax.models.guidance import resize


def test_align_corners_true_known_values():
  x = np.array([0.0, 1.0, 4.0], np.float32).reshape(1, 1, 3, 1)
  y = np.asarray(resize.resize_bilinear(x, (1, 5), align_corners=True))
  np.testing.assert_allclose(y.ravel(), [0.0, 0.5, 1.0, 2.5, 4.0], atol=1e-7)


def test_align_corners_false_known_values():
  x = np.array([0.0, 1.0], np.float32).reshape(1, 1, 2, 1)
  y = np.asarray(resize.resize_bilinear(x, (1, 4), align_corners=False))
  # src = (i + .5) / 2 - .5 = -.25 (clamped to 0), .25, .75, 1.25 (clamped)
  np.testing.assert_allclose(y.ravel(), [0.0, 0.25, 0.75, 1.0], atol=1e-7)


def test_adaptive_avg_and_nearest_known_values():
  x = np.arange(5, dtype=np.float32).reshape(1, 1, 5, 1)
  y = np.asarray(resize.adaptive_avg_pool(x, (1, 3)))
  # bins [0, 2), [1, 4), [3, 5)
  np.testing.assert_allclose(y.ravel(), [0.5, 2.0, 3.5], atol=1e-6)
  z = np.asarray(resize.resize_nearest(x, (1, 2)))
  np.testing.assert_array_equal(z.ravel(), [0.0, 2.0])  # floor(i * 5 / 2)


@pytest.mark.torch
@pytest.mark.parametrize("src,dst", [((8, 8), (64, 64)), ((5, 7), (13, 4)),
                                     ((6, 9), (6, 20))])
def test_matches_torch(src, dst):
  torch = pytest.importorskip("torch")
  f = torch.nn.functional
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 3, *src)).astype(np.float32)
  xt = torch.from_numpy(x)
  xn = x.transpose(0, 2, 3, 1)
  for ac in (True, False):
    want = f.interpolate(xt, dst, mode="bilinear", align_corners=ac).numpy()
    got = np.asarray(resize.resize_bilinear(xn, dst, align_corners=ac))
    np.testing.assert_allclose(got.transpose(0, 3, 1, 2), want, atol=1e-5)
  want = f.interpolate(xt, dst, mode="nearest").numpy()
  got = np.asarray(resize.resize_nearest(xn, dst))
  np.testing.assert_array_equal(got.transpose(0, 3, 1, 2), want)
  want = torch.nn.AdaptiveAvgPool2d(dst)(xt).numpy()
  got = np.asarray(resize.adaptive_avg_pool(xn, dst))
  np.testing.assert_allclose(got.transpose(0, 3, 1, 2), want, atol=1e-5)
