"""Resumable chunked work: each finished chunk is one atomically written .npz.

An interrupted stage reruns only the chunks whose files are missing. A chunk
file records the fingerprint of the work it belongs to, so results from a
different config are never mixed in.
"""

from __future__ import annotations

import os

import numpy as np

from diffinf_jax import fileio


class ChunkStore:
  """Chunk files `{directory}/chunk_{k:05d}.npz` tagged with a fingerprint."""

  def __init__(self, directory: str, fingerprint: str):
    self.directory = directory
    self.fingerprint = fingerprint
    os.makedirs(directory, exist_ok=True)

  def path(self, k: int) -> str:
    return os.path.join(self.directory, f"chunk_{k:05d}.npz")

  def load(self, k: int) -> dict[str, np.ndarray] | None:
    """The chunk's arrays, or None if absent, corrupt or from other work."""
    path = self.path(k)
    if not os.path.isfile(path):
      return None
    try:
      arrays = fileio.load_npz(path, required=("_fingerprint",))
    except (ValueError, KeyError):
      return None
    if str(arrays.pop("_fingerprint")) != self.fingerprint:
      return None
    return arrays

  def save(self, k: int, arrays: dict[str, np.ndarray]) -> None:
    fileio.save_npz(self.path(k), _fingerprint=np.array(self.fingerprint),
                    **arrays)


def split_chunks(n: int, chunk_size: int) -> list[slice]:
  if chunk_size <= 0:
    raise ValueError(f"chunk size {chunk_size}: must be positive")
  return [slice(s, min(s + chunk_size, n)) for s in range(0, n, chunk_size)]
