"""Atomic file writes: a stage never leaves a half-written output behind.

Every writer goes to a temporary sibling path first and is renamed into place,
which is atomic on POSIX file systems.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
from typing import Any, Iterator

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
  """Yields a temporary path that is renamed to `path` if the block succeeds."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(
      prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
  os.close(fd)
  try:
    yield tmp
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


@contextlib.contextmanager
def atomic_dir(path: str) -> Iterator[str]:
  """Yields a temporary directory that replaces `path` if the block succeeds."""
  parent = os.path.dirname(os.path.abspath(path))
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix="." + os.path.basename(path) + ".", dir=parent)
  try:
    yield tmp
    if os.path.isdir(path):
      shutil.rmtree(path)
    os.replace(tmp, path)
  finally:
    if os.path.isdir(tmp):
      shutil.rmtree(tmp)


def _json_default(obj: Any) -> Any:
  if isinstance(obj, np.generic):
    return obj.item()
  if isinstance(obj, np.ndarray):
    return obj.tolist()
  raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(path: str, obj: Any) -> None:
  """Writes `obj` as indented JSON, atomically (numpy values are converted)."""
  text = json.dumps(obj, indent=2, sort_keys=True, default=_json_default)
  write_text(path, text + "\n")


def read_json(path: str) -> Any:
  """Reads a JSON file, naming the file in the error if it does not parse."""
  try:
    with open(path) as f:
      return json.load(f)
  except FileNotFoundError:
    raise FileNotFoundError(f"{path}: file not found") from None
  except json.JSONDecodeError as e:
    raise ValueError(f"{path}: not valid JSON ({e}); delete or regenerate it")


def csv_text(rows: list[dict], columns, digits: int = 6) -> str:
  """CSV text of dict rows in `columns` order; floats with `digits` decimals
  (missing values as empty cells)."""
  import csv
  buf = io.StringIO()
  w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
  w.writeheader()
  for r in rows:
    w.writerow({k: (f"{r.get(k):.{digits}f}" if isinstance(r.get(k), float)
                    else r.get(k, "")) for k in columns})
  return buf.getvalue()


def write_text(path: str, text: str) -> None:
  with atomic_path(path) as tmp:
    with open(tmp, "w") as f:
      f.write(text)


def write_bytes(path: str, data: bytes) -> None:
  with atomic_path(path) as tmp:
    with open(tmp, "wb") as f:
      f.write(data)


def save_npz(path: str, **arrays: np.ndarray) -> None:
  """Saves arrays into an uncompressed .npz, atomically."""
  buf = io.BytesIO()
  np.savez(buf, **arrays)
  write_bytes(path, buf.getvalue())


def save_npy(path: str, array: np.ndarray) -> None:
  buf = io.BytesIO()
  np.save(buf, array)
  write_bytes(path, buf.getvalue())


def load_npz(path: str, required: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
  """Loads an .npz into a dict, checking that `required` keys are present."""
  try:
    with np.load(path, allow_pickle=False) as data:
      out = {k: data[k] for k in data.files}
  except FileNotFoundError:
    raise FileNotFoundError(f"{path}: file not found") from None
  except Exception as e:  # zipfile / pickle errors: corrupt file.
    raise ValueError(f"{path}: cannot read ({e}); delete it and rerun") from e
  missing = [k for k in required if k not in out]
  if missing:
    raise KeyError(f"{path}: missing arrays {missing}; found {sorted(out)}")
  return out
