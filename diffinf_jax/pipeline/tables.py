"""The comparison table: means with intervals, paired differences, a forest plot.

Input: runs keyed by pair = (noise seed, training seed), per method. A
method's row summarises its runs (mean, std, 95% t-interval, or "n/a
(1 seed)"); a difference pairs two methods on the pairs both have and gives
the interval of the mean paired difference. A method missing a pair is an
explicit gap, never a silently smaller average.
"""

from __future__ import annotations

import dataclasses

from diffinf_jax import fileio
from diffinf_jax import plots
from diffinf_jax import stats

METRICS = (("accuracy", "accuracy"), ("auroc_macro_ovr", "macro AUROC"),
           ("kappa_linear", "kappa (linear)"))


@dataclasses.dataclass
class Row:
  """One method of the table."""
  method: str                    # the spec, e.g. "diffinf@confident_learning:auto"
  label: str                     # what the reader sees
  group: str                     # baseline | diffinf | removal | ceiling
  noise_rate: str                # true | estimated | - (what the method is told)
  runs: dict                     # pair -> metrics dict
  missing: list                  # pairs of the study this method lacks

  def interval(self, metric: str) -> stats.Interval:
    return stats.mean_interval(r[metric] for r in self.runs.values())


def difference(a: Row, b: Row, metric: str):
  """(interval of a - b over their common pairs, unpaired pairs)."""
  return stats.paired_difference({k: r[metric] for k, r in a.runs.items()},
                                 {k: r[metric] for k, r in b.runs.items()})


def comparisons(rows: list[Row]) -> list[tuple[Row, Row]]:
  """The differences a reader needs: every method minus CE, each DiffInf
  minus the removal of the same flagged set, and DiffInf (the paper's) minus
  the best baseline (highest mean accuracy among baselines)."""
  by = {r.method: r for r in rows}
  out = []
  ce = by.get("ce")
  if ce is not None:
    out += [(r, ce) for r in rows if r is not ce]
  for r in rows:
    if r.group == "diffinf":
      twin = by.get(r.method.replace("diffinf", "influence_removal", 1))
      if twin is not None:
        out.append((r, twin))
  baselines = [r for r in rows if r.group == "baseline" and r.method != "ce"
               and r.runs]
  if "diffinf" in by and baselines:
    best = max(baselines, key=lambda r: r.interval("accuracy").mean)
    out.append((by["diffinf"], best))
  return out


def csv_rows(rows: list[Row]) -> list[dict]:
  out = []
  for r in rows:
    d = {"method": r.method, "label": r.label, "group": r.group,
         "noise_rate": r.noise_rate, "runs": len(r.runs),
         "missing": len(r.missing)}
    for key, _ in METRICS:
      iv = r.interval(key)
      d.update({f"{key}_mean": iv.mean if iv.n else None,
                f"{key}_std": iv.std, f"{key}_low": iv.low,
                f"{key}_high": iv.high})
    out.append(d)
  return out


CSV_COLUMNS = ("method", "label", "group", "noise_rate", "runs", "missing") + \
    tuple(f"{k}_{s}" for k, _ in METRICS for s in ("mean", "std", "low",
                                                    "high"))
DIFF_COLUMNS = ("a", "b", "metric", "mean", "low", "high", "pairs",
                "significant", "unpaired")


def difference_rows(rows: list[Row]) -> list[dict]:
  out = []
  for a, b in comparisons(rows):
    for key, _ in METRICS:
      iv, unpaired = difference(a, b, key)
      out.append({"a": a.method, "b": b.method, "metric": key,
                  "mean": iv.mean if iv.n else None, "low": iv.low,
                  "high": iv.high, "pairs": iv.n,
                  "significant": "yes" if iv.excludes_zero() else "no",
                  "unpaired": len(unpaired)})
  return out


def markdown(rows: list[Row], skipped: dict[str, str]) -> str:
  """The table (mean ± 95% half-width over the runs) and the differences."""
  head = ["method", "noise rate", "runs"] + [t for _, t in METRICS]
  lines = ["| " + " | ".join(head) + " |",
           "|" + "|".join(" --- " for _ in head) + "|"]
  for r in rows:
    runs = f"{len(r.runs)}" + (f" ({len(r.missing)} missing)" if r.missing
                               else "")
    cells = [r.label, r.noise_rate, runs] + [r.interval(k).text()
                                             for k, _ in METRICS]
    lines.append("| " + " | ".join(cells) + " |")
  for method, why in skipped.items():
    lines.append(f"| {method} | | 0 | not run: {why} | | |")
  lines += ["", "Mean ± half-width of the 95% t-interval over the runs "
            "(pairs of noise seed and training seed). Noise rate: what a "
            "method that needs one is told (true = the injected rate, which "
            "a user does not know).", ""]
  diffs = difference_rows(rows)
  if diffs:
    lines += ["Paired differences (same noise draw and training seed), 95% "
              "t-interval of the mean difference:", "",
              "| comparison | metric | difference | pairs | excludes 0 |",
              "| --- | --- | --- | --- | --- |"]
    labels = {r.method: r.label for r in rows}
    names = dict(METRICS)
    for d in diffs:
      iv = stats.Interval(d["mean"] if d["mean"] is not None else float("nan"),
                          d["pairs"], None, d["low"], d["high"])
      lines.append(f"| {labels[d['a']]} − {labels[d['b']]} | "
                   f"{names[d['metric']]} | {iv.text()} | {d['pairs']} | "
                   f"{d['significant']} |")
  return "\n".join(lines) + "\n"


def write(out_dir: str, rows: list[Row], skipped: dict[str, str]) -> None:
  """table.csv, table.md, table.png, differences.csv, forest.png."""
  import os
  fileio.write_text(os.path.join(out_dir, "table.csv"),
                    fileio.csv_text(csv_rows(rows), CSV_COLUMNS))
  fileio.write_text(os.path.join(out_dir, "differences.csv"),
                    fileio.csv_text(difference_rows(rows), DIFF_COLUMNS))
  fileio.write_text(os.path.join(out_dir, "table.md"),
                    markdown(rows, skipped))
  shown = [r for r in rows if r.runs]
  plots.comparison_bars(
      [r.label for r in shown],
      [(title, [r.interval(k).mean for r in shown],
        [r.interval(k).half_width or 0.0 for r in shown])
       for k, title in METRICS], os.path.join(out_dir, "table.png"))
  labels = {r.method: r.label for r in rows}
  acc = [d for d in difference_rows(rows) if d["metric"] == "accuracy"
         and d["pairs"]]
  plots.forest(
      [f"{labels[d['a']]} − {labels[d['b']]}" for d in acc],
      [d["mean"] for d in acc], [d["low"] for d in acc],
      [d["high"] for d in acc], "accuracy difference (95% CI)",
      os.path.join(out_dir, "forest.png"))
