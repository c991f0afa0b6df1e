"""`compare` on the tiny demo: table columns, reuse, data-changing methods."""

import csv
import os

import numpy as np
import pytest

from diffinf_jax import compare
from diffinf_jax import configuration
from diffinf_jax import data
from diffinf_jax import fileio
from diffinf_jax.correction import refined


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _fake_influence_and_correction(config, w):
  ds = data.get_dataset(config, w)
  train = ds.arrays("train")
  rng = np.random.default_rng(0)
  fileio.save_npy(os.path.join(w, "influence", "scores.npy"),
                  rng.random(len(train["index"])))
  fileio.save_npy(os.path.join(w, "influence", "index.npy"), train["index"])
  flagged = train["index"][:3]
  fileio.save_npz(os.path.join(w, "correct", "corrected.npz"), index=flagged,
                  image=np.zeros((3, 16, 16, 3), np.float32))
  return ds, flagged


def test_compare_table_and_reuse(tmp_path):
  w = str(tmp_path / "w")
  c = configuration.get_config(
      "configs/demo.py:tiny",
      ["compare.methods=('ce', 'influence_removal', 'diffinf', 'divide_mix')",
       "compare.seeds=(0, 1)", "compare.num_epochs=1"])
  _fake_influence_and_correction(c, w)
  compare.run(c, w)
  with open(os.path.join(w, "compare", "table.csv")) as f:
    rows = list(csv.DictReader(f))
  assert tuple(rows[0].keys()) == compare.TABLE_COLUMNS
  assert [r["method"] for r in rows] == ["ce", "influence_removal", "diffinf"]
  assert all(r["seeds"] == "2" for r in rows)
  md = open(os.path.join(w, "compare", "table.md")).read()
  assert "DivideMix | 0 | not run" in md  # not built: listed, not faked
  assert os.path.isfile(os.path.join(w, "compare", "table.png"))
  assert "self_influence" in open(os.path.join(w, "compare",
                                               "detection.csv")).read()
  # Reuse: a second run trains nothing (metrics files untouched).
  path = os.path.join(w, "compare", "ce", "seed0", "eval", "metrics.json")
  mtime = os.path.getmtime(path)
  compare.run(c, w)
  assert os.path.getmtime(path) == mtime


def test_refined_and_removal_datasets(tmp_path):
  w = str(tmp_path / "w")
  c = configuration.get_config("configs/demo.py:tiny")
  ds, flagged = _fake_influence_and_correction(c, w)
  d2 = refined.refined_dataset(ds, w)
  pos = ds.position_of(flagged)
  assert len(d2.index) == len(ds.index)
  assert np.all(d2.image[pos] == 128)  # 0.0 in [-1, 1] -> uint8 128
  np.testing.assert_array_equal(d2.noisy_label, ds.noisy_label)
  other = np.setdiff1d(np.arange(len(ds.index)), pos)
  np.testing.assert_array_equal(d2.image[other], ds.image[other])
  d3 = refined.remove_indices(ds, flagged)
  assert len(d3.index) == len(ds.index) - 3
  assert not set(flagged) & set(d3.index)
  with pytest.raises(KeyError, match="not in the dataset"):
    refined.replace_images(ds, np.array([99999]), np.zeros((1, 16, 16, 3)))
  test_idx = ds.indices("test")[:1]
  with pytest.raises(ValueError, match="not a training sample"):
    refined.replace_images(ds, test_idx, np.zeros((1, 16, 16, 3)))
