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


def maybe_initialize_distributed() -> None:
  """Initialises multi-host JAX when launched by a cluster scheduler.

  Set DIFFINF_DISTRIBUTED=1 (with the usual JAX coordinator environment or a
  SLURM/TPU environment that jax.distributed auto-detects).
  """
  if os.environ.get("DIFFINF_DISTRIBUTED") == "1":
    jax.distributed.initialize()


def data_mesh(devices=None) -> Mesh:
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), ("data",))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P("data"))


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
