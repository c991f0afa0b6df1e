"""Helpers shared by config files."""

import ml_collections


def parse_arg(arg: str | None, **defaults):
  """Parses `key=value,flag` strings (`file.py:tiny,task=expression`).

  Types come from the defaults; a bare key means True; unknown keys raise.
  """
  out = dict(defaults)
  if not arg:
    return ml_collections.ConfigDict(out)
  for item in arg.split(","):
    key, eq, value = item.partition("=")
    if key not in defaults:
      raise KeyError(f"config arg {key!r} unknown; valid: {sorted(defaults)}")
    default = defaults[key]
    if not eq:
      out[key] = True
    elif isinstance(default, bool):
      if value.lower() not in ("true", "false", "1", "0"):
        raise ValueError(f"config arg {key}={value}: expected true/false")
      out[key] = value.lower() in ("true", "1")
    else:
      out[key] = type(default)(value)
  return ml_collections.ConfigDict(out)
