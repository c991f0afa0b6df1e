"""The dataset interface: splits, batching, label checks."""

import numpy as np
import pytest

from diffinf_jax import configuration
from diffinf_jax import data
from diffinf_jax import sharding
from diffinf_jax.pipeline import data as data_stage


def _cfg(*overrides):
  return configuration.get_config("configs/demo.py:tiny",
                                  ["data.demo.cache_dir="] + list(overrides))


def test_split_is_deterministic_and_disjoint(tmp_path):
  a = data_stage.load(_cfg(), str(tmp_path / "a"))
  b = data_stage.load(_cfg(), str(tmp_path / "b"))
  np.testing.assert_array_equal(a.split, b.split)
  sets = [set(a.indices(s)) for s in ("train", "val", "test")]
  assert sum(map(len, sets)) == len(a.index)
  assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])


def test_iterate_batches_deterministic_and_complete(tmp_path):
  arr = data_stage.load(_cfg(), str(tmp_path / "w")).arrays("train")
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
