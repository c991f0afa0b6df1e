"""The converter kit: torch-free key mapping with every key accounted for.

Converters (`diffinf convert ...`, diffinf_jax/convert/*) map a PyTorch
state dict onto a Flax variables tree and fail with the list of missing,
unconsumed and misshaped keys; layout tests use `ShapeOnly` stand-ins read
from a key list instead of real weights. Converted weights are written with
`diffinf_jax.weights.write_converted`.
"""

from __future__ import annotations

import hashlib

import flax.traverse_util
import numpy as np


def sha256_file(path: str) -> str:
  """Hex sha256 of a file, streamed."""
  h = hashlib.sha256()
  try:
    with open(path, "rb") as f:
      for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
  except FileNotFoundError:
    raise FileNotFoundError(f"{path}: checkpoint file not found") from None
  return h.hexdigest()


class ShapeOnly:
  """Stands in for an array in layout checks: shape/dtype, transpose, reshape."""

  def __init__(self, shape, dtype="float32"):
    self.shape = tuple(int(v) for v in shape)
    self.dtype = np.dtype(dtype)
    self.ndim = len(self.shape)

  def transpose(self, *perm):
    perm = perm[0] if len(perm) == 1 and isinstance(perm[0], tuple) else perm
    perm = perm or tuple(reversed(range(self.ndim)))
    return ShapeOnly([self.shape[p] for p in perm], self.dtype)

  @property
  def T(self):  # noqa: N802 (numpy's name)
    return self.transpose()

  def reshape(self, *shape):
    shape = shape[0] if len(shape) == 1 and isinstance(shape[0], tuple) else shape
    shape = list(shape)
    if -1 in shape:
      known = int(np.prod([v for v in shape if v != -1]))
      shape[shape.index(-1)] = int(np.prod(self.shape)) // known
    if int(np.prod(shape)) != int(np.prod(self.shape)):
      raise ValueError(f"cannot reshape {self.shape} to {tuple(shape)}")
    return ShapeOnly(shape, self.dtype)

  def astype(self, dtype):
    return ShapeOnly(self.shape, dtype)


def read_key_list(path: str) -> dict:
  """Parses a `name comma-separated-shape` key list (scalars: name alone).

  Returns {name: ShapeOnly}; `#` lines are comments. Used by layout tests that
  check a converter against a real model's state dict without its weights.
  """
  out = {}
  with open(path) as f:
    for line in f:
      line = line.strip()
      if not line or line.startswith("#"):
        continue
      parts = line.split()
      shape = [int(v) for v in parts[1].split(",")] if len(parts) > 1 else []
      dtype = "int64" if parts[0].endswith("num_batches_tracked") else "float32"
      out[parts[0]] = ShapeOnly(shape, dtype)
  return out


_FLOAT_KINDS = ("float16", "float32", "float64")


def check_float_state_dict(state_dict: dict, what: str,
                           expect_dtype: str | None = None) -> str:
  """Checks parameter dtypes; returns the source float dtype ('float16', ...).

  Raises ValueError on non-float parameters, a mix of float widths, or a
  float width other than `expect_dtype` (when given).
  """
  dtypes = set()
  for k, v in state_dict.items():
    if k.endswith("num_batches_tracked"):
      continue
    name = np.dtype(v.dtype).name
    if name not in _FLOAT_KINDS:
      raise ValueError(f"{what}: entry {k!r} has dtype {name}; expected "
                       "float16/float32 weights (is this a quantised or "
                       "non-PyTorch checkpoint?)")
    dtypes.add(name)
  if len(dtypes) > 1:
    raise ValueError(f"{what}: mixed parameter dtypes {sorted(dtypes)}; "
                     "re-save the checkpoint in one precision")
  src = dtypes.pop() if dtypes else "float32"
  if expect_dtype and expect_dtype != "auto" and src != expect_dtype:
    raise ValueError(f"{what}: checkpoint parameters are {src}, but "
                     f"--source-dtype {expect_dtype} was requested; pass "
                     f"--source-dtype {src} (or auto) if this is the right "
                     "file")
  return src


def _leaf_source(collection: str, leaf: str, ndim: int):
  """(torch suffix, transform) for one Flax leaf of a conv/dense/BN/PReLU."""
  if collection == "batch_stats":
    return {"mean": "running_mean", "var": "running_var"}[leaf], None
  if leaf == "kernel" and ndim == 4:
    return "weight", lambda a: a.transpose(2, 3, 1, 0)  # OIHW -> HWIO
  if leaf == "kernel" and ndim == 2:
    return "weight", lambda a: a.T
  if leaf == "scale":
    return "weight", None
  if leaf in ("bias", "weight"):
    return leaf, None
  raise ValueError(f"no torch counterpart for Flax leaf {collection}/{leaf}")


def _summarise(keys, limit=8) -> str:
  keys = sorted(keys)
  more = f" ... (+{len(keys) - limit} more)" if len(keys) > limit else ""
  return ", ".join(keys[:limit]) + more


def map_torch_modules(state_dict: dict, target: dict, torch_prefix,
                      what: str, hooks: dict | None = None) -> dict:
  """Fills a Flax variables tree from a torch state dict, accounting every key.

  Args:
    state_dict: {torch name: array or ShapeOnly}; floats are cast to float32.
    target: variables tree of leaves with `.shape` (e.g. from jax.eval_shape),
      collections `params` and optionally `batch_stats`.
    torch_prefix: maps a Flax module path tuple, e.g. ('layer1_0', 'bn1'), to
      the torch module name 'layer1.0.bn1'.
    what: name used in error messages (e.g. the source file).
    hooks: {(module path..., leaf): fn(array) -> array} replacing the default
      transform of that leaf (e.g. a flatten-order permutation).

  Returns:
    Nested dict of float32 numpy arrays (ShapeOnly in layout checks) with
    exactly the structure of `target`.

  Raises:
    ValueError: listing missing, unconsumed or wrongly shaped keys.
  """
  hooks = hooks or {}
  flat = flax.traverse_util.flatten_dict(target)
  out, consumed, missing, bad = {}, set(), [], []
  bn_modules = set()
  for path, tgt in flat.items():
    collection, mpath, leaf = path[0], path[1:-1], path[-1]
    suffix, fn = _leaf_source(collection, leaf, len(tgt.shape))
    fn = hooks.get((*mpath, leaf), fn)
    key = f"{torch_prefix(mpath)}.{suffix}"
    if collection == "batch_stats":
      bn_modules.add(torch_prefix(mpath))
    if key not in state_dict:
      missing.append(key)
      continue
    src = state_dict[key]
    arr = fn(src) if fn is not None else src
    if tuple(arr.shape) != tuple(tgt.shape):
      bad.append(f"{key}: checkpoint {tuple(src.shape)} -> "
                 f"{tuple(arr.shape)}, model expects {tuple(tgt.shape)}")
      continue
    out[path] = (arr.astype(np.float32) if isinstance(arr, ShapeOnly)
                 else np.ascontiguousarray(np.asarray(arr, np.float32)))
    consumed.add(key)
  consumed |= {f"{m}.num_batches_tracked" for m in bn_modules}
  check_accounted(what, "the architecture", missing,
                  set(state_dict) - consumed, bad)
  return flax.traverse_util.unflatten_dict(out)


def check_accounted(what: str, against: str, missing, unconsumed,
                    bad: list[str]) -> None:
  """Raises one ValueError listing missing keys, unconsumed keys and shape
  mismatches (`bad`: one message each), if there are any."""
  problems = []
  if missing:
    problems.append(f"{len(missing)} missing keys: {_summarise(missing)}")
  if unconsumed:
    problems.append(f"{len(unconsumed)} unconsumed keys: "
                    f"{_summarise(unconsumed)}")
  if bad:
    problems.append(f"{len(bad)} shape mismatches: {'; '.join(bad[:6])}")
  if problems:
    raise ValueError(f"{what}: checkpoint does not match {against}: "
                     + " | ".join(problems))


def strip_prefix(state_dict: dict, prefixes=("module.",)) -> tuple[dict, str]:
  """Removes a wrapper prefix shared by every key (DataParallel 'module.')."""
  for p in prefixes:
    if state_dict and all(k.startswith(p) for k in state_dict):
      return {k[len(p):]: v for k, v in state_dict.items()}, p
  return dict(state_dict), ""

