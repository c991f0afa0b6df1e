"""The one Orbax wrapper: classifier checkpoints that TracIn can weight.

Each checkpoint step holds three items:
  variables  {'params', 'batch_stats'} (what influence and evaluation read)
  train      optimizer state, step counter and rng (what resuming needs)
  meta       JSON {step, epoch, learning_rate, ...}

`learning_rate` is the mean learning rate over the optimiser steps since the
previous checkpoint (for a constant schedule: the rate itself), i.e. the
eta_t that TracIn's sum_t eta_t * ||g_t||^2 weights this checkpoint with. All
steps are kept (TracIn needs every one).
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

ITEMS = ("variables", "train", "meta")


def _manager(ckpt_dir: str, read_only: bool = False) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(
      max_to_keep=None, create=not read_only, read_only=read_only,
      enable_async_checkpointing=False)
  return ocp.CheckpointManager(os.path.abspath(ckpt_dir), options=options,
                               item_names=ITEMS)


def save(ckpt_dir: str, step: int, variables: dict, train: dict,
         meta: dict) -> None:
  """Saves one step (blocking, atomic: Orbax finalises via a rename)."""
  if "learning_rate" not in meta or meta["learning_rate"] is None:
    raise ValueError("checkpoint metadata needs the learning rate in force")
  mngr = _manager(ckpt_dir)
  mngr.save(step, args=ocp.args.Composite(
      variables=ocp.args.StandardSave(jax.device_get(variables)),
      train=ocp.args.StandardSave(jax.device_get(train)),
      meta=ocp.args.JsonSave(dict(meta, step=int(step)))), force=True)
  mngr.wait_until_finished()
  mngr.close()


def _step_dirs(ckpt_dir: str) -> list[int]:
  if not os.path.isdir(ckpt_dir):
    return []
  return sorted(int(n) for n in os.listdir(ckpt_dir) if n.isdigit())


def _check_complete(ckpt_dir: str, step: int) -> None:
  path = os.path.join(ckpt_dir, str(step))
  missing = [i for i in ITEMS if not os.path.isdir(os.path.join(path, i))]
  if missing:
    raise ValueError(
        f"{path}: partial checkpoint (missing {missing}); delete this step "
        "directory to resume from the previous one")


def list_checkpoints(ckpt_dir: str) -> list[dict]:
  """Metadata of every complete step, sorted by step.

  Returns:
    list of dicts with at least step, epoch, learning_rate.

  Raises:
    ValueError: a step directory is partial or its metadata is unreadable.
  """
  steps = _step_dirs(ckpt_dir)
  if not steps:
    return []
  out = []
  mngr = _manager(ckpt_dir, read_only=True)
  for step in steps:
    _check_complete(ckpt_dir, step)
    try:
      meta = mngr.restore(step, args=ocp.args.Composite(
          meta=ocp.args.JsonRestore()))["meta"]
    except Exception as e:  # orbax raises various types on corrupt files
      raise ValueError(f"{ckpt_dir}/{step}/meta: unreadable checkpoint "
                       f"metadata ({e})") from e
    out.append(dict(meta))
  mngr.close()
  return out


def _shape_diff(restored, abstract) -> list[str]:
  flat_r = dict(jax.tree_util.tree_flatten_with_path(restored)[0])
  flat_a = dict(jax.tree_util.tree_flatten_with_path(abstract)[0])
  name = jax.tree_util.keystr
  diffs = [f"{name(k)} missing" for k in flat_a if k not in flat_r]
  diffs += [f"{name(k)} unexpected" for k in flat_r if k not in flat_a]
  diffs += [f"{name(k)} {np.shape(flat_r[k])} != {np.shape(flat_a[k])}"
            for k in flat_a if k in flat_r and
            tuple(np.shape(flat_r[k])) != tuple(np.shape(flat_a[k]))]
  return diffs


def _restore_item(ckpt_dir: str, step: int, item: str, abstract: Any,
                  with_target: bool = False):
  if step not in _step_dirs(ckpt_dir):
    raise FileNotFoundError(f"{ckpt_dir}: no checkpoint step {step}; "
                            f"available: {_step_dirs(ckpt_dir)}")
  _check_complete(ckpt_dir, step)
  mngr = _manager(ckpt_dir, read_only=True)
  try:
    # Plain dict trees restore without a target so that a shape mismatch can
    # be reported by key; trees with named tuples (optimizer states) need one.
    target = jax.tree_util.tree_map(np.asarray, abstract) if with_target \
        else None
    restored = mngr.restore(step, args=ocp.args.Composite(
        **{item: ocp.args.StandardRestore(target)}))[item]
  except Exception as e:
    raise ValueError(f"{ckpt_dir}/{step}/{item}: corrupt or unreadable "
                     f"checkpoint ({e})") from e
  finally:
    mngr.close()
  diffs = _shape_diff(restored, abstract)
  if diffs:
    raise ValueError(
        f"{ckpt_dir}/{step}: checkpoint does not match this model "
        f"({'; '.join(diffs[:6])}); was it trained with another model config?")
  return jax.tree_util.tree_map(
      lambda r, a: np.asarray(r, dtype=getattr(a, "dtype", None) or
                              np.asarray(a).dtype), restored, abstract)


def restore_variables(ckpt_dir: str, step: int, abstract_variables: Any):
  """{'params', 'batch_stats'} of one step, checked against the model."""
  return _restore_item(ckpt_dir, step, "variables", abstract_variables)


def restore_train(ckpt_dir: str, step: int, abstract_train: Any):
  """Optimizer state / counters of one step (for resuming)."""
  return _restore_item(ckpt_dir, step, "train", abstract_train,
                       with_target=True)


def latest_step(ckpt_dir: str) -> int | None:
  steps = _step_dirs(ckpt_dir)
  return steps[-1] if steps else None
