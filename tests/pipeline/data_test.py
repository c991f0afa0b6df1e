"""The data stage: labels.npz and its reuse, rebuilt when the config changes."""

import json
import os

import numpy as np
import pytest

from diffinf_jax import configuration
from diffinf_jax.pipeline import data as data_stage


def _cfg(*overrides):
  return configuration.get_config("configs/demo.py:tiny",
                                  ["data.demo.cache_dir="] + list(overrides))


def test_prepare_writes_stable_interfaces(tmp_path):
  w = str(tmp_path / "w")
  ds = data_stage.load(_cfg(), w)
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
  assert arr["image"].shape[1:] == (32, 32, 3)
  assert arr["parsing"].shape[1:] == (32, 32)
  np.testing.assert_array_equal(arr["label"], labels["noisy_label"][train])


def test_reuse_and_rebuild_on_config_change(tmp_path):
  w = str(tmp_path / "w")
  a = data_stage.load(_cfg(), w)
  mtime = os.path.getmtime(os.path.join(w, "data", "labels.npz"))
  b = data_stage.load(_cfg(), w)
  assert os.path.getmtime(os.path.join(w, "data", "labels.npz")) == mtime
  np.testing.assert_array_equal(a.noisy_label, b.noisy_label)
  c = data_stage.load(_cfg("noise.seed=9"), w)
  assert not np.array_equal(a.noisy_label, c.noisy_label)


def test_mismatched_labels_file_is_an_error(tmp_path):
  w = str(tmp_path / "w")
  data_stage.load(_cfg(), w)
  # Pretend labels.npz came from another dataset but the hash still matches.
  from diffinf_jax import fileio
  lab = dict(np.load(os.path.join(w, "data", "labels.npz")))
  lab["index"] = lab["index"] + 1000
  fileio.save_npz(os.path.join(w, "data", "labels.npz"), **lab)
  with pytest.raises(ValueError, match="does not match"):
    data_stage.load(_cfg(), w)
