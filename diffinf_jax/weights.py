"""Weights of pretrained networks on disk: one layout, one loader.

A converted (`diffinf convert ...`) or project-trained network lives in a
directory:

  DST/params/        Orbax checkpoint of the variables tree
  DST/config.json    architecture config (enough to rebuild the module)
  DST/manifest.json  source_sha256, source_prefix, num_source_keys, num_params,
                     dtype (the dtype the weights are stored in)

Weights may be stored in float16 to keep shipped files small; they are always
loaded back as float32. `package:weights/<name>` names weights shipped in
diffinf_jax/assets.
"""

from __future__ import annotations

import os

import numpy as np

from diffinf_jax import fileio


def count_params(variables) -> int:
  import jax
  return int(sum(np.size(x) for x in jax.tree_util.tree_leaves(
      variables.get("params", variables) if isinstance(variables, dict)
      else variables)))


def _cast(variables, dtype: str):
  import jax
  return jax.tree_util.tree_map(
      lambda x: np.asarray(x).astype(dtype)
      if np.issubdtype(np.asarray(x).dtype, np.floating) else np.asarray(x),
      variables)


def write_converted(dst: str, variables, config: dict, manifest: dict,
                    dtype: str | None = None) -> None:
  """Writes DST/ atomically (a failed write leaves no partial directory).

  Args:
    dst: output directory (replaced if it exists).
    variables: Flax variables tree ({'params': ..., 'batch_stats': ...}).
    config: architecture config (JSON-serialisable).
    manifest: provenance; `num_params` and `dtype` are filled in if absent.
    dtype: store floats in this dtype (e.g. 'float16'); default keep.
  """
  import orbax.checkpoint as ocp
  if dtype is not None:
    variables = _cast(variables, dtype)
  manifest = dict(manifest)
  manifest.setdefault("num_params", count_params(variables))
  manifest.setdefault("dtype", dtype or "float32")
  with fileio.atomic_dir(dst) as tmp:
    ckpt = ocp.StandardCheckpointer()
    ckpt.save(os.path.join(os.path.abspath(tmp), "params"), variables)
    ckpt.wait_until_finished()
    # Orbax records the absolute temporary path here; weights are shipped
    # and moved, so keep the marker without the writer's paths.
    marker = os.path.join(tmp, "params", "commit_success.txt")
    if os.path.isfile(marker):
      fileio.write_text(marker, "Checkpoint commit was successful\n")
    fileio.write_json(os.path.join(tmp, "config.json"), config)
    fileio.write_json(os.path.join(tmp, "manifest.json"), manifest)


PACKAGE_PREFIX = "package:"


def resolve_weights_dir(path: str) -> str:
  """Maps `package:weights/...` (weights shipped in diffinf_jax/assets) to a
  file-system path; other paths are returned unchanged."""
  if path.startswith(PACKAGE_PREFIX):
    from importlib import resources
    return str(resources.files("diffinf_jax") / "assets" /
               path[len(PACKAGE_PREFIX):])
  return path


def load_converted(path: str, what: str = "weights"):
  """Loads DST/ -> (variables as float32 numpy tree, config, manifest).

  `path` may be `package:weights/<name>` for weights shipped with the package.

  Raises:
    FileNotFoundError: naming the missing directory/file and how to make it.
  """
  import jax
  import orbax.checkpoint as ocp
  if not path:
    raise FileNotFoundError(
        f"no directory configured for the {what}; convert a checkpoint with "
        "`diffinf convert ...` and set the config key to its output")
  path = resolve_weights_dir(path)
  params_dir = os.path.join(os.path.abspath(path), "params")
  for p in (params_dir, os.path.join(path, "config.json")):
    if not os.path.exists(p):
      raise FileNotFoundError(
          f"{p}: {what} not found; create {path} with `diffinf convert ...` "
          "(official PyTorch checkpoint) or the matching scripts/train_demo_* "
          "script")
  try:
    variables = ocp.StandardCheckpointer().restore(params_dir)
  except Exception as e:  # orbax raises many types for corrupt files
    raise ValueError(f"{params_dir}: cannot restore ({e}); re-run the "
                     "conversion") from e
  variables = jax.tree_util.tree_map(
      lambda x: np.asarray(x, np.float32)
      if np.issubdtype(np.asarray(x).dtype, np.floating) else np.asarray(x),
      variables)
  manifest_path = os.path.join(path, "manifest.json")
  manifest = fileio.read_json(manifest_path) if os.path.isfile(
      manifest_path) else {}
  return variables, fileio.read_json(os.path.join(path, "config.json")), manifest
