"""A plain folder + CSV loader for any labelled face dataset.

CSV columns: `path` (relative to data_dir), `label` (int class), optional
`index` (stable integer id; default: row number) and `identity` (int).
"""

from __future__ import annotations

import csv
import os

import numpy as np

from diffinf_jax.data import ffhq


def read_folder_csv(csv_path: str, num_classes: int) -> dict[str, np.ndarray]:
  try:
    with open(csv_path, newline="") as f:
      rows = list(csv.DictReader(f))
  except FileNotFoundError:
    raise FileNotFoundError(f"{csv_path}: label CSV not found "
                            "(set --config.data.labels_file)") from None
  if not rows or "path" not in rows[0] or "label" not in rows[0]:
    raise ValueError(f"{csv_path}: needs a header with columns path,label")
  out = {"path": np.array([r["path"] for r in rows])}
  try:
    out["label"] = np.array([int(r["label"]) for r in rows], np.int64)
    out["index"] = np.array([int(r.get("index") or i)
                             for i, r in enumerate(rows)], np.int64)
    if "identity" in rows[0]:
      out["identity"] = np.array([int(r["identity"]) for r in rows], np.int64)
  except ValueError as e:
    raise ValueError(f"{csv_path}: non-integer label/index/identity ({e})")
  bad = np.flatnonzero((out["label"] < 0) | (out["label"] >= num_classes))
  if bad.size:
    raise ValueError(
        f"{csv_path}: row {bad[0] + 1} has label {out['label'][bad[0]]} "
        f"outside [0, {num_classes}); fix the CSV or model.num_classes")
  if len(np.unique(out["index"])) != len(out["index"]):
    raise ValueError(f"{csv_path}: duplicate values in column index")
  return out


def load_folder_images(root: str, paths: np.ndarray, size: int) -> np.ndarray:
  out = np.empty((len(paths), size, size, 3), np.uint8)
  for i, p in enumerate(paths):
    out[i] = ffhq.load_png(os.path.join(root, p), size)
  return out
