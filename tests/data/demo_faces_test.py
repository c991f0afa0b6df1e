"""Embedded demo faces: determinism, masks, and learnable labels."""

import numpy as np
import pytest

from diffinf_jax.data import demo_faces

BINS = ((0, 18), (25, 40), (50, 200))


def test_deterministic_for_a_seed():
  a = demo_faces.render_dataset(12, 4, 32, seed=5, age_bins=BINS)
  b = demo_faces.render_dataset(12, 4, 32, seed=5, age_bins=BINS)
  c = demo_faces.render_dataset(12, 4, 32, seed=6, age_bins=BINS)
  for k in a:
    np.testing.assert_array_equal(a[k], b[k])
  assert not np.array_equal(a["image"], c["image"])


@pytest.mark.parametrize("size", [32, 64, 128])
def test_shapes_ranges_and_parts(size):
  d = demo_faces.render_dataset(6, 3, size, seed=0, age_bins=BINS)
  assert d["image"].shape == (6, size, size, 3)
  assert d["image"].dtype == np.float32
  assert d["image"].min() >= -1.0 and d["image"].max() <= 1.0
  assert d["parsing"].shape == (6, size, size)
  assert d["parsing"].max() < len(demo_faces.PARTS)
  # Every face shows skin, eyes and a mouth.
  for k in (1, 3, 5):
    assert np.all((d["parsing"] == k).reshape(6, -1).any(axis=1))


def test_ages_fall_in_bins_and_labels_follow():
  d = demo_faces.render_dataset(300, 10, 16, seed=1, age_bins=BINS)
  assert np.all(d["age_label"] >= 0)
  np.testing.assert_array_equal(d["age_label"],
                                demo_faces.age_class(d["age"], BINS))
  assert d["age"].min() >= 0 and d["age"].max() <= 81
  # Balanced classes by construction (each within 30% of N/K).
  np.testing.assert_allclose(np.bincount(d["age_label"]), 100, rtol=0.3)
  np.testing.assert_allclose(np.bincount(d["expression_label"]), 75, rtol=0.3)


def test_age_class_excludes_gaps():
  np.testing.assert_array_equal(
      demo_faces.age_class(np.array([0, 18.9, 19, 24.5, 25, 40, 41, 49, 50,
                                     80]), BINS),
      [0, 0, -1, -1, 1, 1, -1, -1, 2, 2])


def _ridge_accuracy(x, y, k, n_train):
  x = np.concatenate([x.reshape(len(x), -1), np.ones((len(x), 1))], 1)
  onehot = np.eye(k)[y]
  w = np.linalg.solve(x[:n_train].T @ x[:n_train] + 10 * np.eye(x.shape[1]),
                      x[:n_train].T @ onehot[:n_train])
  return float((np.argmax(x[n_train:] @ w, 1) == y[n_train:]).mean())


def test_both_tasks_are_learnable_well_above_chance():
  # Even a linear classifier on raw 32px pixels separates the classes;
  # measured 0.81 (age) and 0.80 (expression) with this seed.
  d = demo_faces.render_dataset(800, 100, 32, seed=3, age_bins=BINS)
  assert _ridge_accuracy(d["image"], d["age_label"], 3, 600) > 0.7
  assert _ridge_accuracy(d["image"], d["expression_label"], 4, 600) > 0.7


def test_cache_roundtrip(tmp_path):
  a = demo_faces.load_or_render(8, 2, 16, 0, BINS, str(tmp_path))
  files = list(tmp_path.iterdir())
  assert len(files) == 1
  b = demo_faces.load_or_render(8, 2, 16, 0, BINS, str(tmp_path))
  np.testing.assert_array_equal(a["image"], b["image"])
  files[0].write_bytes(b"corrupt")  # a corrupt cache is re-rendered
  c = demo_faces.load_or_render(8, 2, 16, 0, BINS, str(tmp_path))
  np.testing.assert_array_equal(a["image"], c["image"])


def test_unsupported_size():
  with pytest.raises(ValueError, match="demo image size 48"):
    demo_faces.render_dataset(2, 1, 48, 0, BINS)
