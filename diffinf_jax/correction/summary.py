"""The summary of a correction run: per-class and before/after means."""

from __future__ import annotations

import numpy as np


def _mean(x) -> float | None:
  x = np.asarray(x, np.float64)
  return float(x.mean()) if x.size else None


def summarise(results: dict, class_names, judge_before=None,
              judge_after=None) -> dict:
  """The keys of W/correct/summary.json from the merged per-sample results.

  Args:
    results: arrays keyed by name (index, label, flipped, after_lpips, ...).
    judge_before/after: [M] classes predicted by the independent judge, when
      the run has one.
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
  if judge_before is not None:
    flipped = results["flipped"].astype(bool)
    for when, pred in (("before", judge_before), ("after", judge_after)):
      agree = pred == label
      s[f"judge_agreement_{when}"] = _mean(agree)
      s[f"judge_agreement_flipped_{when}"] = _mean(agree[flipped])
      s[f"judge_agreement_clean_{when}"] = _mean(agree[~flipped])
    s["num_flipped_corrected"] = int(flipped.sum())
  return s


ABLATION_COLUMNS = ("variant", "judge_flipped", "judge_clean", "judge_all",
                    "identity_cos", "lpips", "p_high")


def ablation_row(name: str, metrics: dict, prefix: str, label, flipped,
                 judged=None) -> dict:
  """One row of W/correct/ablation.csv.

  Args:
    metrics: per-sample arrays with keys `{prefix}_lpips`, ... [M].
    label, flipped: [M] assigned labels and flip flags.
    judged: [M] classes the independent judge sees in this variant's images
      (None: no judge; the judge columns stay empty).
  """
  row = {"variant": name}
  for key in ("identity_cos", "lpips", "p_high"):
    arr = metrics.get(f"{prefix}_{key}")
    row[key] = None if arr is None else _mean(arr)
  flipped = np.asarray(flipped, bool)
  agree = None if judged is None else np.asarray(judged) == np.asarray(label)
  for part, sel in (("flipped", flipped), ("clean", ~flipped),
                    ("all", np.ones_like(flipped))):
    row[f"judge_{part}"] = None if agree is None else _mean(agree[sel])
  return row
