"""FFHQ thumbnails joined with Azure Face API attribute labels.

Layout of the user-supplied images (FFHQ `thumbnails128x128`):
`{root}/{idx - idx % 1000:05d}/{idx:05d}.png`.

Labels come from the packaged `assets/ffhq_features.csv.gz` (all 70,000 images)
or from the original per-image JSON files (`json/{idx:05d}.json`, a JSON array
of faces; an empty array means no face and the image is skipped and counted).

Label rules (fixed here and in the README):
* age: integer Azure age; bins young 0-18, middle 25-40, old 50+ (configurable);
  ages between bins (19-24, 41-49) are excluded.
* expression: argmax over ALL eight emotions in Azure's key order EMOTIONS; on an
  exact tie the first maximum in that order wins (numpy.argmax). Kept only if it
  is one of the four targets, mapped to classes 0 happy, 1 neutral,
  2 surprised, 3 sad.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
from importlib import resources

import numpy as np

from diffinf_jax.data import images

EMOTIONS = ("anger", "contempt", "disgust", "fear", "happiness", "neutral",
            "sadness", "surprise")
NUM_FFHQ = 70000


def packaged_csv_path() -> str:
  return str(resources.files("diffinf_jax") / "assets" / "ffhq_features.csv.gz")


def thumbnail_path(root: str, idx: int) -> str:
  return os.path.join(root, f"{idx - idx % 1000:05d}", f"{idx:05d}.png")


def _empty_records(indices: np.ndarray) -> dict[str, np.ndarray]:
  n = len(indices)
  return {"index": np.asarray(indices, np.int64),
          "n_faces": np.zeros(n, np.int64),
          "age": np.full(n, np.nan),
          "emotion": np.full((n, len(EMOTIONS)), np.nan)}


def read_features_csv(path: str = "") -> dict[str, np.ndarray]:
  """Reads the flattened attribute CSV (.csv or .csv.gz).

  Returns:
    index [N], n_faces [N], age [N] (NaN without a face), emotion [N, 8]
    in EMOTIONS order.
  """
  path = path or packaged_csv_path()
  opener = gzip.open if path.endswith(".gz") else open
  try:
    with opener(path, "rt") as f:
      rows = list(csv.DictReader(f))
  except FileNotFoundError:
    raise FileNotFoundError(f"{path}: label CSV not found") from None
  except (OSError, EOFError, UnicodeDecodeError) as e:
    raise ValueError(f"{path}: cannot read label CSV ({e})") from e
  needed = ("index", "n_faces", "age") + EMOTIONS
  if not rows or any(k not in rows[0] for k in needed):
    raise ValueError(f"{path}: label CSV needs columns {needed}")
  out = _empty_records(np.array([int(r["index"]) for r in rows]))
  for i, r in enumerate(rows):
    try:
      out["n_faces"][i] = int(r["n_faces"])
      if out["n_faces"][i] > 0:
        out["age"][i] = float(r["age"])
        out["emotion"][i] = [float(r[e]) for e in EMOTIONS]
    except ValueError as e:
      raise ValueError(f"{path}: row for index {r['index']}: {e}") from e
  return out


def parse_face_json(text: str, path: str) -> tuple[int, float, np.ndarray]:
  """Parses one Azure JSON array: (n_faces, age of face 0, emotions of face 0)."""
  try:
    faces = json.loads(text)
  except json.JSONDecodeError as e:
    raise ValueError(f"{path}: not valid JSON ({e})") from e
  if not isinstance(faces, list):
    raise ValueError(f"{path}: expected a JSON array of faces")
  if not faces:
    return 0, np.nan, np.full(len(EMOTIONS), np.nan)
  try:
    attrs = faces[0]["faceAttributes"]
    age = float(attrs["age"])
    emotion = np.array([float(attrs["emotion"][e]) for e in EMOTIONS])
  except (KeyError, TypeError, ValueError) as e:
    raise ValueError(
        f"{path}: face 0 lacks faceAttributes.age/emotion ({e!r})") from e
  return len(faces), age, emotion


def read_features_json_dir(json_dir: str,
                           indices: np.ndarray | None = None
                           ) -> dict[str, np.ndarray]:
  """Reads `{json_dir}/{idx:05d}.json` for the given (or all present) indices."""
  if not os.path.isdir(json_dir):
    raise FileNotFoundError(f"{json_dir}: attribute JSON directory not found")
  if indices is None:
    names = sorted(n for n in os.listdir(json_dir) if n.endswith(".json"))
    indices = np.array([int(n[:-5]) for n in names if n[:-5].isdigit()])
  out = _empty_records(indices)
  for i, idx in enumerate(out["index"]):
    path = os.path.join(json_dir, f"{idx:05d}.json")
    try:
      with open(path) as f:
        text = f.read()
    except FileNotFoundError:
      raise FileNotFoundError(f"{path}: attribute JSON missing") from None
    n, age, emo = parse_face_json(text, path)
    out["n_faces"][i], out["age"][i], out["emotion"][i] = n, age, emo
  return out


def age_labels(records: dict, bins) -> np.ndarray:
  """[N] class per image: bin index, -1 for excluded ages or no face."""
  age = records["age"]
  out = np.full(age.shape, -1, np.int64)
  has = records["n_faces"] > 0
  age_int = np.where(has, np.nan_to_num(age), -1).astype(np.int64)
  for k, (lo, hi) in enumerate(bins):
    out[has & (age_int >= lo) & (age_int <= hi)] = k
  return out


def expression_labels(records: dict, targets) -> np.ndarray:
  """[N] class per image: position of the argmax emotion in `targets`, or -1."""
  has = records["n_faces"] > 0
  arg = np.argmax(np.nan_to_num(records["emotion"], nan=-1.0), axis=1)
  lookup = np.full(len(EMOTIONS), -1, np.int64)
  for k, name in enumerate(targets):
    if name not in EMOTIONS:
      raise ValueError(f"data.expressions: unknown emotion {name!r}; "
                       f"valid: {EMOTIONS}")
    lookup[EMOTIONS.index(name)] = k
  return np.where(has, lookup[arg], -1)


def label_counts(labels: np.ndarray, num_classes: int) -> list[int]:
  return [int((labels == k).sum()) for k in range(num_classes)]


FFHQ_LAYOUT_HINT = ("data.data_dir must point at FFHQ thumbnails128x128 "
                    "(layout NNN00/NNNNN.png)")


def load_images(root: str, indices: np.ndarray, size: int) -> np.ndarray:
  """uint8 [N, size, size, 3] FFHQ thumbnails of `indices`."""
  if not os.path.isdir(root):
    raise FileNotFoundError(
        f"{root}: FFHQ thumbnail directory not found; set "
        "--config.data.data_dir=/path/to/thumbnails128x128")
  return images.load_images([thumbnail_path(root, int(i)) for i in indices],
                            size, FFHQ_LAYOUT_HINT, desc="load FFHQ")
