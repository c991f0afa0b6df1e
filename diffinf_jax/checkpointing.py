"""The one Orbax wrapper: classifier checkpoints that TracIn can weight
(and `StateCheckpoints`, the resumable state of other training loops).

Each checkpoint step holds three items:
  variables  {'params', 'batch_stats'} (what influence and evaluation read)
  train      optimizer state, step counter, epoch and best validation
             accuracy (what resuming needs; the rng is not saved: training
             derives it from (seed, step))
  meta       JSON {step, epoch, learning_rate, variables_digest, ...}

`learning_rate` is the mean learning rate over the optimiser steps since the
previous checkpoint (for a constant schedule: the rate itself), i.e. the
eta_t that TracIn's sum_t eta_t * ||g_t||^2 weights this checkpoint with. All
steps are kept (TracIn needs every one). `variables_digest` (sha256 of the
variable arrays) identifies the weights, so results computed from a
checkpoint can tell when it was replaced.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, Callable, Mapping, Sequence

import jax
import numpy as np
import orbax.checkpoint as ocp

ITEMS = ("variables", "train", "meta")


def run_checkpoints(run_dir: str) -> str:
  """The checkpoint directory of a classifier run directory."""
  return os.path.join(run_dir, "checkpoints")


def _manager(ckpt_dir: str, read_only: bool = False) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(
      max_to_keep=None, create=not read_only, read_only=read_only,
      enable_async_checkpointing=False)
  return ocp.CheckpointManager(os.path.abspath(ckpt_dir), options=options,
                               item_names=ITEMS)


def digest(tree: Any) -> str:
  """sha256 (24 hex) of a tree's array leaves: their paths, dtypes, shapes
  and bytes, in a fixed order."""
  h = hashlib.sha256()
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    arr = np.ascontiguousarray(np.asarray(leaf))
    h.update(f"{jax.tree_util.keystr(path)}|{arr.dtype}|{arr.shape}".encode())
    h.update(arr.tobytes())
  return h.hexdigest()[:24]


def save(ckpt_dir: str, step: int, variables: dict, train: dict,
         meta: dict, *, require_learning_rate: bool = True) -> None:
  """Saves one step (blocking, atomic: Orbax finalises via a rename).

  Args:
    require_learning_rate: the step is one of a TracIn checkpoint series, so
      its metadata must carry `learning_rate` (eta_t); False for single
      snapshots such as the best-on-validation one.
  """
  if require_learning_rate and meta.get("learning_rate") is None:
    raise ValueError("checkpoint metadata needs the learning rate in force")
  variables = jax.device_get(variables)
  mngr = _manager(ckpt_dir)
  mngr.save(step, args=ocp.args.Composite(
      variables=ocp.args.StandardSave(variables),
      train=ocp.args.StandardSave(jax.device_get(train)),
      meta=ocp.args.JsonSave(dict(meta, step=int(step),
                                  variables_digest=digest(variables)))),
            force=True)
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


def shape_differences(restored, abstract) -> list[str]:
  """Keys missing, unexpected or of another shape in `restored` vs `abstract`."""
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
  diffs = shape_differences(restored, abstract)
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


def check_variables(variables: Any, abstract: Any, where: str) -> None:
  """Raises unless `variables` has the model's keys and shapes."""
  diffs = shape_differences(variables, abstract)
  if diffs:
    raise ValueError(
        f"{where}: the variables do not match the model ({'; '.join(diffs[:6])}"
        "); were they saved from another model or config?")


# --- any Orbax CheckpointManager directory (a user's own training loop) -----
# Where a learning rate may sit in a checkpoint's JSON metadata.
LR_KEYS = ("learning_rate", "lr")


def _find_variables(tree: Any, abstract: Mapping, where: str) -> dict:
  """The model variables inside a restored checkpoint tree.

  The subtree holding every collection of the model (`params`, and
  `batch_stats` when the model has one) by name; a tree that is the bare
  parameter tree of a model with parameters only also matches.
  """
  names = list(abstract)
  found = []

  def visit(node, depth):
    if not isinstance(node, Mapping) or depth > 4:
      return
    if all(c in node for c in names):
      found.append({c: node[c] for c in names})
      return
    for v in node.values():
      visit(v, depth + 1)
  visit(tree, 0)
  if not found and names == ["params"]:
    same = (jax.tree.structure(tree)
            == jax.tree.structure(abstract["params"]))
    found = [{"params": tree}] if same else []
  if len(found) != 1:
    top = sorted(tree) if isinstance(tree, Mapping) else type(tree).__name__
    what = "several subtrees" if found else "no subtree"
    raise ValueError(
        f"{where}: {what} with the model's collections {names} (top-level "
        f"keys: {top}); pass variables_fn=lambda restored: {{...}} returning "
        "the model variables")
  return found[0]


def _lr_in(meta: Any) -> float | None:
  if isinstance(meta, Mapping):
    for k in LR_KEYS:
      if meta.get(k) is not None:
        return float(meta[k])
  return None


def _orbax_items(step_dir: str) -> tuple[list[str], list[str]]:
  """(JSON items, pytree items) of one Orbax step directory."""
  json_items, tree_items = [], []
  for name in sorted(os.listdir(step_dir)):
    path = os.path.join(step_dir, name)
    if name.startswith("_") or not os.path.isdir(path):
      continue
    files = set(os.listdir(path))
    if files & {"_METADATA", "manifest.ocdbt", "checkpoint", "_sharding"}:
      tree_items.append(name)
    elif "metadata" in files:
      json_items.append(name)
  return json_items, tree_items


def _any_manager(directory: str, items: Sequence[str] | None):
  import orbax.checkpoint as ocp
  options = ocp.CheckpointManagerOptions(read_only=True, create=False)
  if items is None:
    return ocp.CheckpointManager(directory, options=options)
  return ocp.CheckpointManager(directory, options=options,
                               item_names=tuple(items))


def _restore_any_item(directory: str, step: int, item: str, json: bool):
  """One item of one step, restored as saved (no target tree)."""
  import orbax.checkpoint as ocp
  args = ocp.args.JsonRestore() if json else ocp.args.StandardRestore()
  # A manager saving a single unnamed item stores it as "default".
  single = item == "default"
  mngr = _any_manager(directory, None if single else [item])
  try:
    if single:
      return mngr.restore(step, args=args)
    return mngr.restore(step, args=ocp.args.Composite(**{item: args}))[item]
  finally:
    mngr.close()


def _generic_checkpoints(directory: str, steps: list[int], abstract,
                         variables_fn) -> tuple[list[float | None], list]:
  """Learning rates and loaders of a user's own Orbax manager directory."""
  lrs, loaders = [], []
  for step in steps:
    step_dir = os.path.join(directory, str(step))
    json_items, tree_items = _orbax_items(step_dir)
    if not tree_items:
      raise ValueError(f"{step_dir}: no pytree item (StandardSave / "
                       "PyTreeSave) to read model variables from")
    lr = None
    for item in json_items:
      lr = lr if lr is not None else _lr_in(
          _restore_any_item(directory, step, item, json=True))
    if lr is None:
      mngr = _any_manager(directory, None)
      try:
        lr = _lr_in(getattr(mngr.metadata(step), "custom_metadata", None))
      finally:
        mngr.close()
    lrs.append(lr)

    def load(step=step, tree_items=tuple(tree_items)):
      where = f"{directory}/{step}"
      restored = {i: _restore_any_item(directory, step, i, json=False)
                  for i in tree_items}
      tree = restored[tree_items[0]] if len(tree_items) == 1 else restored
      variables = (variables_fn(tree) if variables_fn is not None
                   else _find_variables(tree, abstract, where))
      check_variables(variables, abstract, where)
      return variables
    loaders.append(load)
  return lrs, loaders


def read_any(directory: str, abstract: Mapping, *,
             steps: Sequence[int] | None = None,
             variables_fn: Callable[[Any], Any] | None = None
             ) -> tuple[list[int], list[float | None], list[Callable]]:
  """The steps of a CheckpointManager directory: this project's layout or
  any other (model variables found by collection name, the learning rate
  in a JSON item or the step's custom metadata under LR_KEYS).

  Args:
    abstract: the model's variables (arrays or ShapeDtypeStructs), for
      locating and checking the restored trees.
    steps: the steps to use (default: all, ascending).
    variables_fn: restored tree (one item, or {item: tree}) -> variables,
      when the variables cannot be found by collection name.

  Returns:
    (steps, stored learning rate or None per step, loaders of the checked
    variables).

  Raises:
    FileNotFoundError: no step directories; ValueError: a requested step is
    missing.
  """
  directory = os.path.abspath(os.fspath(directory))
  found = _step_dirs(directory)
  if not found:
    raise FileNotFoundError(f"{directory}: no Orbax checkpoint steps "
                            "(numbered sub-directories)")
  if steps is not None:
    missing = sorted(set(steps) - set(found))
    if missing:
      raise ValueError(f"{directory}: no steps {missing}; found {found}")
    found = sorted(steps)
  ours = all(os.path.isdir(os.path.join(directory, str(found[0]), i))
             for i in ITEMS)
  if ours and variables_fn is None:
    meta = {int(m["step"]): m for m in list_checkpoints(directory)}
    lrs = [_lr_in(meta.get(s)) for s in found]
    loaders = [lambda s=s: restore_variables(directory, s, abstract)
               for s in found]
    return found, lrs, loaders
  lrs, loaders = _generic_checkpoints(directory, found, abstract,
                                      variables_fn)
  return found, lrs, loaders


class StateCheckpoints:
  """A training loop's whole state (one pytree) every few steps, for resuming.

  Keeps the newest `max_to_keep` steps in `ckpt_dir` (Orbax, blocking saves
  finalised by a rename, so an interrupted save leaves no step). Used by the
  DiffAE trainer, which sees only `latest` and `save`.
  """

  def __init__(self, ckpt_dir: str, max_to_keep: int = 2):
    self._mngr = ocp.CheckpointManager(
        os.path.abspath(ckpt_dir), options=ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True,
            enable_async_checkpointing=False))

  def latest(self, template: Any) -> Any | None:
    """The newest saved state in the structure of `template`, or None."""
    step = self._mngr.latest_step()
    if step is None:
      return None
    restored = self._mngr.restore(step, args=ocp.args.StandardRestore(
        jax.tree_util.tree_map(np.asarray, template)))
    return jax.tree_util.tree_map(jax.numpy.asarray, restored)

  def save(self, step: int, state: Any) -> None:
    self._mngr.save(step, args=ocp.args.StandardSave(
        jax.tree_util.tree_map(np.asarray, state)))
    self._mngr.wait_until_finished()
