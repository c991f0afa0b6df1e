"""Data-parallel sharding over all devices: a one-axis ('data',) mesh.

The same code runs on 1 CPU, 8 GPUs or a TPU slice: batches are split along
their leading axis, parameters are replicated. Multi-host runs call
`jax.distributed.initialize()` first (see `maybe_initialize_distributed`).
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P


_DISTRIBUTED_UP = False


def maybe_initialize_distributed() -> None:
  """Initialises multi-host JAX when launched by a cluster scheduler.

  Set DIFFINF_DISTRIBUTED=1 (with the usual JAX coordinator environment or a
  SLURM/TPU environment that jax.distributed auto-detects). Idempotent: a
  second call (a stage run from `diffinf run`) does nothing.
  """
  global _DISTRIBUTED_UP
  if os.environ.get("DIFFINF_DISTRIBUTED") == "1" and not _DISTRIBUTED_UP:
    jax.distributed.initialize()
    _DISTRIBUTED_UP = True


def default_compilation_cache_dir() -> str:
  """`$DIFFINF_JAX_CACHE`, else ~/.cache/diffinf_jax/xla (XDG)."""
  if "DIFFINF_JAX_CACHE" in os.environ:
    return os.environ["DIFFINF_JAX_CACHE"]
  base = os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache"))
  return os.path.join(base, "diffinf_jax", "xla")


def enable_compilation_cache(path: str | None = None) -> None:
  """XLA's persistent compilation cache in `path` ('' disables it).

  Stages compile the same programs again and again (every baseline trains
  the same network, cross-fitting trains K copies); with the cache each
  program is compiled once per machine. Only compiled code is stored, never
  results.
  """
  path = default_compilation_cache_dir() if path is None else path
  if not path:
    return
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def data_mesh(devices=None) -> Mesh:
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), ("data",))


def global_batch_size(batch_size: int, mesh: Mesh) -> int:
  """`batch_size` rounded up to a multiple of the mesh's device count, so
  that every device gets an equal share of each batch."""
  n = mesh.devices.size
  return -(-int(batch_size) // n) * n


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading axis split over the mesh's (first) axis."""
  return NamedSharding(mesh, P(mesh.axis_names[0]))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def pad_batch(batch: dict[str, np.ndarray], multiple: int
              ) -> dict[str, np.ndarray]:
  """Pads every array's leading axis to a multiple; `mask` is False on pads."""
  n = len(next(iter(batch.values())))
  target = -(-n // multiple) * multiple
  out = {}
  for key, value in batch.items():
    value = np.asarray(value)
    pad = [(0, target - n)] + [(0, 0)] * (value.ndim - 1)
    out[key] = np.pad(value, pad)
  mask = np.asarray(batch.get("mask", np.ones(n, bool)), bool)
  out["mask"] = np.pad(mask, (0, target - n))
  return out


def shard_batch(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, Any]:
  """Pads to a multiple of the device count and places the batch on the mesh."""
  batch = pad_batch(batch, mesh.devices.size)
  sharding = batch_sharding(mesh)
  return {k: jax.device_put(v, sharding) for k, v in batch.items()}


def replicate(tree: Any, mesh: Mesh) -> Any:
  return jax.device_put(tree, replicated(mesh))
