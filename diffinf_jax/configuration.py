"""Loading experiment configs (`get_config()` files) and command-line overrides.

A config file is a Python module with `get_config(arg=None)` returning an
`ml_collections.ConfigDict`. It is addressed as `path/to/file.py[:arg]`.
Overrides have the form `--config.a.b=value`; the value is parsed into the type
of the existing entry and an unknown key is an error (no silent typos).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import os
from typing import Any, Sequence

import ml_collections

_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CONFIG = "demo"


def resolve_config_path(spec: str) -> tuple[str, str | None]:
  """Splits `file.py[:arg]` and finds the file (also by bare name: `demo`)."""
  path, _, arg = spec.partition(":")
  candidates = [path]
  if not path.endswith(".py"):
    candidates.append(path + ".py")
  candidates += [os.path.join(_PACKAGE_ROOT, "configs", os.path.basename(c))
                 for c in list(candidates)]
  for c in candidates:
    if os.path.isfile(c):
      return c, (arg or None)
  raise FileNotFoundError(
      f"config file {path!r} not found (looked at {candidates}); pass an "
      "existing configs/*.py file, e.g. --config configs/demo.py")


def load_config_file(spec: str) -> ml_collections.ConfigDict:
  """Imports a config file and calls its `get_config(arg)`."""
  path, arg = resolve_config_path(spec)
  module_spec = importlib.util.spec_from_file_location(
      "_diffinf_config_" + hashlib.md5(path.encode()).hexdigest(), path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  if not hasattr(module, "get_config"):
    raise AttributeError(f"{path}: defines no get_config() function")
  config = module.get_config(arg) if arg is not None else module.get_config()
  return config


def _parse_value(key: str, text: str, current: Any) -> Any:
  """Parses `text` into the type of `current` (the existing config value)."""
  if isinstance(current, bool):
    low = text.lower()
    if low in ("true", "1", "yes"):
      return True
    if low in ("false", "0", "no"):
      return False
    raise ValueError(f"--config.{key}={text}: expected true or false")
  if isinstance(current, str):
    return text
  if text.lower() == "none":
    return None
  try:
    value = ast.literal_eval(text)
  except (ValueError, SyntaxError):
    if current is None:
      return text
    raise ValueError(
        f"--config.{key}={text}: cannot parse as {type(current).__name__}"
    ) from None
  if isinstance(current, float) and isinstance(value, int):
    value = float(value)
  if current is not None and isinstance(value, (list, tuple)) and isinstance(
      current, (list, tuple)):
    return type(current)(value)
  if current is not None and not isinstance(value, type(current)):
    raise ValueError(
        f"--config.{key}={text}: expected {type(current).__name__}, got "
        f"{type(value).__name__}")
  return value


def apply_overrides(config: ml_collections.ConfigDict,
                    overrides: Sequence[str]) -> ml_collections.ConfigDict:
  """Applies `a.b=value` strings (the `--config.` prefix may be included)."""
  for item in overrides:
    item = item[len("--config."):] if item.startswith("--config.") else item
    if "=" not in item:
      raise ValueError(f"override {item!r} must look like --config.a.b=value")
    key, text = item.split("=", 1)
    node = config
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
      if part not in node or not isinstance(node[part], ml_collections.ConfigDict):
        raise KeyError(
            f"--config.{key}: unknown key {'.'.join(parts[:i + 1])!r}; see the "
            "config file for the available keys")
      node = node[part]
    leaf = parts[-1]
    if leaf not in node:
      raise KeyError(
          f"--config.{key}: unknown key; valid keys here: {sorted(node.keys())}")
    node[leaf] = _parse_value(key, text, node[leaf])
  return config


def get_config(spec: str | None = None,
               overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
  """Loads a config file (the demo when `spec` is None) with overrides."""
  config = load_config_file(spec or DEFAULT_CONFIG)
  config = apply_overrides(config, overrides)
  validate(config)
  config.lock()
  return config


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks values that would otherwise fail deep inside a stage."""
  rate = config.noise.rate
  if not 0.0 <= rate < 1.0:
    raise ValueError(f"config noise.rate={rate}: must lie in [0, 1)")
  if config.noise.kind not in ("symmetric", "pair"):
    raise ValueError(
        f"config noise.kind={config.noise.kind!r}: use 'symmetric' or 'pair'")
  if config.data.task not in ("age", "expression"):
    raise ValueError(
        f"config data.task={config.data.task!r}: use 'age' or 'expression'")
  expected = {"age": 3, "expression": 4}[config.data.task]
  if config.model.num_classes != expected:
    raise ValueError(
        f"config model.num_classes={config.model.num_classes} disagrees with "
        f"data.task={config.data.task!r} ({expected} classes)")


def to_json(config: ml_collections.ConfigDict) -> str:
  return json.dumps(config.to_dict(), indent=2, sort_keys=True)


def config_hash(config: ml_collections.ConfigDict | dict,
                keys: Sequence[str] | None = None) -> str:
  """A stable hash of the config (or of the named top-level sections)."""
  d = config.to_dict() if hasattr(config, "to_dict") else dict(config)
  if keys is not None:
    d = {k: d.get(k) for k in keys}
  text = json.dumps(d, sort_keys=True, default=str)
  return hashlib.sha256(text.encode()).hexdigest()[:16]


def from_json_file(path: str) -> ml_collections.ConfigDict:
  """Rebuilds a config saved into a work dir (`W/config.json`)."""
  from diffinf_jax import fileio
  return ml_collections.ConfigDict(fileio.read_json(path))
