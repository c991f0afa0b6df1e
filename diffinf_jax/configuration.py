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
import math
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
  """Loads a config file (the demo when `spec` is None) with overrides,
  checked against the schema and locked."""
  config = load_config_file(spec or DEFAULT_CONFIG)
  config = apply_overrides(config, overrides)
  validate(config, where=spec or DEFAULT_CONFIG)
  config.lock()
  return config


def load(spec: str | None, overrides: Sequence[str],
         saved: str | None = None) -> ml_collections.ConfigDict:
  """The config of an invocation: the `--config` file if given, else the
  config a work dir saved with its outputs (`saved`, a config.json), else
  the demo; overrides on top; validated and locked."""
  if spec is None and saved and os.path.isfile(saved):
    config = from_json_file(saved)
    config = apply_overrides(config, overrides)
    validate(config, where=saved)
    config.lock()
    return config
  return get_config(spec, overrides)


def _base():
  from configs import base
  return base


def _flat(config, prefix: str = "") -> dict[str, Any]:
  out = {}
  for key, value in config.items():
    name = prefix + key
    if isinstance(value, (ml_collections.ConfigDict, dict)):
      out.update(_flat(value, name + "."))
    else:
      out[name] = value
  return out


def _kind(value) -> str:
  if isinstance(value, bool):
    return "bool"
  if isinstance(value, (int, float)):
    return "number"
  if isinstance(value, str):
    return "string"
  if isinstance(value, (list, tuple)):
    return "sequence"
  return "none" if value is None else type(value).__name__


def check_schema(config, where: str) -> None:
  """Every key of the base schema (configs/base.py) and no other, with
  values of the schema's kind."""
  want = _flat(_base().get_base_config())
  got = _flat(config)
  unknown = sorted(set(got) - set(want))
  if unknown:
    raise KeyError(f"{where}: config key {unknown[0]!r} is not in the schema "
                   "(configs/base.py); remove it or fix its spelling"
                   + (f" (also {unknown[1:4]})" if len(unknown) > 1 else ""))
  missing = sorted(set(want) - set(got))
  if missing:
    raise KeyError(f"{where}: config lacks key {missing[0]!r} of the schema "
                   "(written by another version?); pass --config FILE to "
                   "start from a current config file")
  for key, value in got.items():
    kinds = {_kind(value), _kind(want[key])}
    if len(kinds) > 1 and "none" not in kinds:
      raise ValueError(f"{where}: config {key}={value!r} should be a "
                       f"{_kind(want[key])} like the schema's "
                       f"{want[key]!r}")


def _check_number(key: str, value, where: str) -> None:
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    raise ValueError(f"{where}: config {key}={value!r} must be a number")
  if not math.isfinite(value):
    raise ValueError(f"{where}: config {key}={value} must be finite")


def validate(config: ml_collections.ConfigDict, where: str = "config") -> None:
  """Checks the whole config when it is read, before any work starts: the
  schema, every enumerated value, every range, and agreement between keys.

  Raises:
    KeyError / ValueError: one message naming the key, the value and the fix.
  """
  base = _base()
  check_schema(config, where)
  flat = _flat(config)
  for key, value in flat.items():
    if isinstance(value, float) and not math.isfinite(value):
      raise ValueError(f"{where}: config {key}={value} must be finite")
  for key, choices in base.CHOICES.items():
    if flat[key] not in choices:
      raise ValueError(f"{where}: config {key}={flat[key]!r}: use one of "
                       f"{list(choices)}")
  for key in base.POSITIVE:
    _check_number(key, flat[key], where)
    if flat[key] <= 0:
      raise ValueError(f"{where}: config {key}={flat[key]} must be > 0")
  for key in base.NON_NEGATIVE:
    _check_number(key, flat[key], where)
    if flat[key] < 0:
      raise ValueError(f"{where}: config {key}={flat[key]} must be >= 0")
  for key in base.UNSET_OR_POSITIVE:
    _check_number(key, flat[key], where)
    if flat[key] != -1 and flat[key] < 1:
      raise ValueError(f"{where}: config {key}={flat[key]} must be -1 (not "
                       "set) or >= 1")
  for key, (lo, hi, lo_in, hi_in) in base.FRACTIONS.items():
    v = flat[key]
    _check_number(key, v, where)
    if not ((v >= lo if lo_in else v > lo) and (v <= hi if hi_in else v < hi)):
      raise ValueError(f"{where}: config {key}={v} must lie in "
                       f"{'[' if lo_in else '('}{lo}, {hi}"
                       f"{']' if hi_in else ')'}")
  _check_consistency(config, where)


def _check_consistency(config, where: str) -> None:
  d = config.data
  if d.split.val_fraction + d.split.test_fraction >= 1.0:
    raise ValueError(f"{where}: config data.split.val_fraction + "
                     "test_fraction must be < 1 (something must be left to "
                     "train on)")
  if d.name != "folder":
    tasks = {"age": 3, "expression": 4}
    if d.task not in tasks:
      raise ValueError(f"{where}: config data.task={d.task!r}: use one of "
                       f"{list(tasks)} for data.name={d.name!r}")
    if config.model.num_classes != tasks[d.task]:
      raise ValueError(
          f"{where}: config model.num_classes={config.model.num_classes} "
          f"disagrees with data.task={d.task!r} ({tasks[d.task]} classes)")
  rate = config.train.assumed_noise_rate
  if rate != -1.0 and not 0.0 <= rate < 1.0:
    raise ValueError(f"{where}: config train.assumed_noise_rate={rate} must "
                     "be -1 (the true noise.rate) or lie in [0, 1)")
  names = tuple(d.class_names)
  if names and len(names) != config.model.num_classes:
    raise ValueError(f"{where}: config data.class_names has {len(names)} "
                     f"names but model.num_classes={config.model.num_classes}")
  if config.model.num_classes < 2:
    raise ValueError(f"{where}: config model.num_classes="
                     f"{config.model.num_classes} must be >= 2")
  if config.judge.kind == "weights" and not config.judge.weights_dir:
    raise ValueError(f"{where}: config judge.kind='weights' needs "
                     "judge.weights_dir (a classifier in the weights layout)")
  if config.judge.kind == "crossfit" and config.judge.num_folds < 2:
    raise ValueError(f"{where}: config judge.num_folds="
                     f"{config.judge.num_folds} must be >= 2")


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
