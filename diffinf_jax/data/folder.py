"""Any labelled image folder: a directory of images plus a CSV.

CSV columns (header required): `path` (relative to data.data_dir), `label`
(a class index 0..K-1 or a class name), optional `index` (stable integer id;
default: the row number) and `identity` (int). The classes are
`data.class_names` when given (K names, in class-index order), else the
distinct names in the `label` column (sorted), else, for integer labels,
0..K-1 with K = model.num_classes.
"""

from __future__ import annotations

import csv
import os

import numpy as np

from diffinf_jax.data import images

MISSING_HINT = ("paths in the CSV's `path` column are relative to "
                "data.data_dir")


def _rows(csv_path: str) -> list[dict]:
  try:
    with open(csv_path, newline="") as f:
      reader = csv.DictReader(f)
      rows = list(reader)
      header = reader.fieldnames or []
  except FileNotFoundError:
    raise FileNotFoundError(f"{csv_path}: label CSV not found (set "
                            "--config.data.labels_file)") from None
  if "path" not in header or "label" not in header:
    raise ValueError(f"{csv_path}: needs a header line with the columns "
                     f"path,label (found {header or 'no header'})")
  if not rows:
    raise ValueError(f"{csv_path}: has a header but no rows; add one row "
                     "path,label per image")
  return rows


def _int_column(rows, name: str, csv_path: str) -> np.ndarray:
  try:
    return np.array([int(r[name]) for r in rows], np.int64)
  except (TypeError, ValueError):
    bad = next(i for i, r in enumerate(rows)
               if not str(r.get(name) or "").lstrip("-").isdigit())
    raise ValueError(f"{csv_path}: row {bad + 2} has {name}="
                     f"{rows[bad].get(name)!r}, not an integer") from None


def class_names_of(labels: list[str], declared, num_classes: int,
                   where: str) -> tuple[str, ...]:
  """The class names of a folder dataset (see the module docstring).

  Raises:
    ValueError: K names that disagree with model.num_classes.
  """
  if declared:
    names = tuple(str(n) for n in declared)
  elif all(v.lstrip("-").isdigit() for v in labels):
    names = tuple(str(k) for k in range(num_classes))
  else:
    names = tuple(sorted(set(labels)))
  if len(names) != num_classes:
    raise ValueError(
        f"{where}: {len(names)} classes ({list(names)[:10]}) but "
        f"model.num_classes={num_classes}; set model.num_classes="
        f"{len(names)} or list the classes in data.class_names")
  return names


def _label_ids(labels: list[str], names, csv_path: str) -> np.ndarray:
  lookup = {n: k for k, n in enumerate(names)}
  out = np.empty(len(labels), np.int64)
  for i, v in enumerate(labels):
    if v in lookup:
      out[i] = lookup[v]
    elif v.lstrip("-").isdigit() and 0 <= int(v) < len(names):
      out[i] = int(v)
    else:
      raise ValueError(
          f"{csv_path}: row {i + 2} has label {v!r}, not one of the "
          f"{len(names)} declared classes {list(names)[:10]} (nor an index "
          f"0..{len(names) - 1}); fix the CSV or data.class_names")
  return out


def read_folder_csv(csv_path: str, num_classes: int, declared_names=()
                    ) -> dict:
  """{path, label, index[, identity]} arrays and the `class_names` tuple."""
  rows = _rows(csv_path)
  raw = [str(r["label"]).strip() for r in rows]
  names = class_names_of(raw, declared_names, num_classes, csv_path)
  out = {"path": np.array([r["path"] for r in rows]),
         "label": _label_ids(raw, names, csv_path), "class_names": names}
  out["index"] = (_int_column(rows, "index", csv_path)
                  if all(r.get("index") for r in rows)
                  else np.arange(len(rows), dtype=np.int64))
  if "identity" in rows[0]:
    out["identity"] = _int_column(rows, "identity", csv_path)
  if len(np.unique(out["index"])) != len(out["index"]):
    raise ValueError(f"{csv_path}: duplicate values in column index")
  return out


def load_folder_images(root: str, paths: np.ndarray, size: int) -> np.ndarray:
  if not os.path.isdir(root):
    raise FileNotFoundError(f"{root}: image folder not found; set "
                            "--config.data.data_dir to the folder the CSV's "
                            "paths are relative to")
  return images.load_images([os.path.join(root, p) for p in paths], size,
                            MISSING_HINT, desc="load folder")
