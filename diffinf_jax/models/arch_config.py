"""Architecture configs as frozen dataclasses <-> the dicts of config.json.

Converted and trained weights store their architecture as JSON next to the
parameters; every architecture config (ArcFace, BiSeNet, DiffAE) goes
through these two functions, so an unknown key or a file of another
architecture is refused the same way everywhere.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def to_dict(config, arch: str | None = None) -> dict[str, Any]:
  """JSON-ready dict of a dataclass config (tuples as lists), tagged with
  `arch` when given."""
  d = {k: list(v) if isinstance(v, tuple) else v
       for k, v in dataclasses.asdict(config).items()}
  return {"arch": arch, **d} if arch else d


def from_dict(cls: type[T], d: dict[str, Any], arch: str | None = None,
              hint: str = "") -> T:
  """The dataclass `cls` from a config.json dict (lists back to tuples).

  Args:
    arch: the expected `arch` tag (absent tags are accepted).
    hint: what to point the config key at instead (error message).

  Raises:
    ValueError: the dict describes another architecture, or has keys `cls`
      does not know.
  """
  d = dict(d)
  found = d.pop("arch", arch)
  if arch and found != arch:
    raise ValueError(f"config.json describes arch={found!r}, not {arch!r}"
                     + (f"; {hint}" if hint else ""))
  names = {f.name for f in dataclasses.fields(cls)}
  unknown = set(d) - names
  if unknown:
    raise ValueError(f"{cls.__name__}: unknown keys {sorted(unknown)}; valid: "
                     f"{sorted(names)}")
  return cls(**{k: tuple(v) if isinstance(v, list) else v
                for k, v in d.items()})
