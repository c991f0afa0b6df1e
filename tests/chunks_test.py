"""Chunk store: atomic, fingerprinted, resumable."""

import numpy as np
import pytest

from diffinf_jax import chunks


def test_roundtrip_and_fingerprint(tmp_path):
  store = chunks.ChunkStore(str(tmp_path), "abc")
  assert store.load(0) is None
  store.save(0, {"x": np.arange(3)})
  np.testing.assert_array_equal(store.load(0)["x"], np.arange(3))
  assert chunks.ChunkStore(str(tmp_path), "other").load(0) is None
  with open(store.path(0), "wb") as f:
    f.write(b"garbage")
  assert store.load(0) is None


def test_split_chunks():
  assert chunks.split_chunks(5, 2) == [slice(0, 2), slice(2, 4), slice(4, 5)]
  assert chunks.split_chunks(0, 3) == []
  with pytest.raises(ValueError):
    chunks.split_chunks(3, 0)
