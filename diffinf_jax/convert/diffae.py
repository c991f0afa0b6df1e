"""Official DiffAE state dict (numpy) -> Flax variables, every key accounted.

Flax module names equal upstream's, so the mapping is: path
('params', 'unet' | 'encoder', *modules, leaf) <-> torch name
'[encoder.]' + '.'.join(modules) + '.weight|bias'. Layouts: Conv2d (O, I, kh,
kw) -> (kh, kw, I, O); Linear (O, I) -> (I, O); the attention's Conv1d
(O, I, 1) and the encoder head's 1x1 conv (O, I, 1, 1) -> Dense (I, O);
GroupNorm weight -> scale.
"""

from __future__ import annotations

import flax.traverse_util
import numpy as np

from diffinf_jax.convert import kit

IGNORED_KEYS = ("x_T", "conds_mean", "conds_std")
PREFIXES = ("ema_model.", "model.")


def select_prefix(state_dict: dict, prefix: str | None) -> tuple[dict, str]:
  """The model weights under `prefix` (default: ema_model., else model.)."""
  candidates = [prefix] if prefix else list(PREFIXES)
  for p in candidates:
    sub = {k[len(p):]: v for k, v in state_dict.items() if k.startswith(p)}
    if sub:
      return sub, p
  found = sorted({k.split(".")[0] for k in state_dict})
  raise ValueError(f"no weights with prefix {candidates} in the checkpoint "
                   f"(top-level names: {found[:10]}); pass --prefix")


def torch_name(path: tuple) -> str:
  _, part, *modules, leaf = path
  base = ".".join(modules)
  if part == "encoder":
    base = "encoder." + base
  return base + "." + ("bias" if leaf == "bias" else "weight")


def _transform(src, target_shape):
  src_shape = tuple(src.shape)
  if len(target_shape) == 4:                      # conv kernel
    return src.transpose(2, 3, 1, 0)
  if len(target_shape) == 2:                      # dense kernel
    if len(src_shape) == 3:
      src = src.reshape(src_shape[0], src_shape[1])
    elif len(src_shape) == 4:
      src = src.reshape(src_shape[0], src_shape[1])
    return src.T
  return src


def convert_state_dict(model_sd: dict, target: dict, what: str) -> dict:
  """Fills the Flax variables `target` (shapes) from a model state dict.

  Raises:
    ValueError: listing missing, unconsumed or misshaped keys.
  """
  flat = flax.traverse_util.flatten_dict(target)
  out, used, missing, bad = {}, set(), [], []
  for path, tgt in flat.items():
    name = torch_name(path)
    if name not in model_sd:
      missing.append(name)
      continue
    arr = _transform(model_sd[name], tuple(tgt.shape))
    if tuple(arr.shape) != tuple(tgt.shape):
      bad.append(f"{name}: {tuple(model_sd[name].shape)} -> {tuple(arr.shape)}"
                 f", model expects {tuple(tgt.shape)}")
      used.add(name)  # matched by name; reported as a shape mismatch
      continue
    out[path] = (arr.astype(np.float32) if not isinstance(arr, np.ndarray)
                 else np.ascontiguousarray(arr, dtype=np.float32))
    used.add(name)
  kit.check_accounted(what, "the DiffAE config", missing,
                      set(model_sd) - used - set(IGNORED_KEYS), bad)
  return flax.traverse_util.unflatten_dict(out)
