"""Writing correction results: PNGs, arrays, grids and the summary."""

from __future__ import annotations

import io
import os

import numpy as np

from diffinf_jax import fileio


def to_uint8(images: np.ndarray) -> np.ndarray:
  return np.clip(np.round((np.asarray(images) + 1.0) * 127.5), 0,
                 255).astype(np.uint8)


def png_bytes(image_uint8: np.ndarray) -> bytes:
  from PIL import Image
  buf = io.BytesIO()
  Image.fromarray(image_uint8).save(buf, format="PNG")
  return buf.getvalue()


def write_pngs(out_dir: str, index: np.ndarray, images: np.ndarray) -> None:
  """One PNG per dataset index: out_dir/{index:06d}.png."""
  os.makedirs(out_dir, exist_ok=True)
  for i, img in zip(index, to_uint8(images)):
    fileio.write_bytes(os.path.join(out_dir, f"{int(i):06d}.png"),
                       png_bytes(img))


def before_after_grid(before: np.ndarray, after: np.ndarray, path: str,
                      scale: int = 1) -> None:
  """Two rows per group of up to 8 samples: originals above, corrections
  below (the paper's Figures 2-3)."""
  n = len(before)
  cols = min(8, n)
  rows = []
  for start in range(0, n, cols):
    for imgs in (before[start:start + cols], after[start:start + cols]):
      imgs = to_uint8(imgs)
      pad = cols - len(imgs)
      if pad:
        imgs = np.concatenate([imgs, np.zeros((pad,) + imgs.shape[1:],
                                              np.uint8)])
      rows.append(np.concatenate(list(imgs), axis=1))
  grid = np.concatenate(rows, axis=0)
  if scale > 1:
    grid = grid.repeat(scale, 0).repeat(scale, 1)
  fileio.write_bytes(path, png_bytes(grid))


def _mean(x) -> float | None:
  x = np.asarray(x, np.float64)
  return float(x.mean()) if x.size else None


def summarise(results: dict, class_names, oracle_before=None,
              oracle_after=None) -> dict:
  """The keys of W/correct/summary.json from the merged per-sample results.

  Args:
    results: arrays keyed by name (index, label, flipped, after_lpips, ...).
    oracle_before/after: [M] oracle-predicted classes, when an oracle exists.
  """
  label = results["label"]
  lp = results["after_lpips"]
  by_class = {name: _mean(lp[label == k]) for k, name in enumerate(class_names)
              if np.any(label == k)}
  s = {"num_corrected": int(len(results["index"])),
       "num_stopped_nonfinite": int((~results["alive"]).sum()),
       "lpips_by_class": by_class, "lpips_mean": _mean(lp),
       "p_assigned_before": _mean(results["before_p_assigned"]),
       "p_assigned_after": _mean(results["after_p_assigned"])}
  s["identity_cos_mean"] = _mean(results["after_identity_cos"]) if (
      "after_identity_cos" in results) else None
  for when in ("before", "after"):
    key = f"{when}_p_high"
    s[f"p_high_{when}"] = _mean(results[key]) if key in results else None
  if oracle_before is not None:
    flipped = results["flipped"].astype(bool)
    for when, pred in (("before", oracle_before), ("after", oracle_after)):
      agree = pred == label
      s[f"oracle_agreement_{when}"] = _mean(agree)
      s[f"oracle_agreement_flipped_{when}"] = _mean(agree[flipped])
      s[f"oracle_agreement_clean_{when}"] = _mean(agree[~flipped])
    s["num_flipped_corrected"] = int(flipped.sum())
  return s
