"""The dataset interface: splits, labels.npz, reuse, batching."""

import json
import os

import numpy as np
import pytest

from diffinf_jax import configuration
from diffinf_jax import data
from diffinf_jax import sharding


def _cfg(*overrides):
  return configuration.get_config("configs/demo.py:tiny",
                                  ["data.demo.cache_dir="] + list(overrides))


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_prepare_writes_stable_interfaces(tmp_path):
  w = str(tmp_path / "w")
  ds = data.get_dataset(_cfg(), w)
  labels = np.load(os.path.join(w, "data", "labels.npz"))
  assert set(labels.files) == {"index", "noisy_label", "clean_label",
                               "flipped", "split"}
  assert set(np.unique(labels["split"])) == {"train", "val", "test"}
  noise = json.load(open(os.path.join(w, "data", "noise.json")))
  for key in ("rate_requested", "rate_realised", "num_train", "num_flipped",
              "per_class_rate", "transition_matrix"):
    assert key in noise
  train = labels["split"] == "train"
  assert noise["num_flipped"] == round(0.3 * train.sum())
  # Noise only on the training split.
  assert not labels["flipped"][~train].any()
  np.testing.assert_array_equal(labels["flipped"],
                                labels["noisy_label"] != labels["clean_label"])
  arr = ds.arrays("train")
  assert arr["image"].shape[1:] == (16, 16, 3)
  assert arr["parsing"].shape[1:] == (16, 16)
  np.testing.assert_array_equal(arr["label"], labels["noisy_label"][train])


def test_reuse_and_rebuild_on_config_change(tmp_path):
  w = str(tmp_path / "w")
  a = data.get_dataset(_cfg(), w)
  mtime = os.path.getmtime(os.path.join(w, "data", "labels.npz"))
  b = data.get_dataset(_cfg(), w)
  assert os.path.getmtime(os.path.join(w, "data", "labels.npz")) == mtime
  np.testing.assert_array_equal(a.noisy_label, b.noisy_label)
  c = data.get_dataset(_cfg("noise.seed=9"), w)
  assert not np.array_equal(a.noisy_label, c.noisy_label)


def test_split_is_deterministic_and_disjoint(tmp_path):
  a = data.get_dataset(_cfg(), str(tmp_path / "a"))
  b = data.get_dataset(_cfg(), str(tmp_path / "b"))
  np.testing.assert_array_equal(a.split, b.split)
  sets = [set(a.indices(s)) for s in ("train", "val", "test")]
  assert sum(map(len, sets)) == len(a.index)
  assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])


def test_iterate_batches_deterministic_and_complete(tmp_path):
  arr = data.get_dataset(_cfg(), str(tmp_path / "w")).arrays("train")
  first = [b["index"] for b in data.iterate_batches(arr, 8, shuffle=True,
                                                    seed=1, epoch=2)]
  again = [b["index"] for b in data.iterate_batches(arr, 8, shuffle=True,
                                                    seed=1, epoch=2)]
  other = [b["index"] for b in data.iterate_batches(arr, 8, shuffle=True,
                                                    seed=1, epoch=3)]
  for x, y in zip(first, again):
    np.testing.assert_array_equal(x, y)
  assert not all(np.array_equal(x, y) for x, y in zip(first, other))
  np.testing.assert_array_equal(np.sort(np.concatenate(first)),
                                np.sort(arr["index"]))


def test_shard_batch_pads_with_mask():
  import jax
  batch = {"image": np.zeros((5, 4, 4, 3), np.float32),
           "index": np.arange(5, dtype=np.int32)}
  mesh = sharding.data_mesh()
  out = sharding.shard_batch(batch, mesh)
  n = len(jax.devices())
  assert out["image"].shape[0] % n == 0
  assert int(np.asarray(out["mask"]).sum()) == 5


def test_label_out_of_range_for_model(tmp_path):
  cfg = configuration.load_config_file("configs/demo.py:tiny")
  cfg.data.task = "expression"  # 4 classes but model says 3
  with pytest.raises(ValueError, match="num_classes"):
    configuration.validate(cfg)


def test_mismatched_labels_file_is_an_error(tmp_path):
  w = str(tmp_path / "w")
  data.get_dataset(_cfg(), w)
  # Pretend labels.npz came from another dataset but the hash still matches.
  from diffinf_jax import fileio
  lab = dict(np.load(os.path.join(w, "data", "labels.npz")))
  lab["index"] = lab["index"] + 1000
  fileio.save_npz(os.path.join(w, "data", "labels.npz"), **lab)
  with pytest.raises(ValueError, match="does not match"):
    data.get_dataset(_cfg(), w)
