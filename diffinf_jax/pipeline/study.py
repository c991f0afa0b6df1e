"""`diffinf study`: every method over noise seeds x training seeds.

For each noise seed k of study.noise_seeds the whole method runs in its own
work dir W/noise<k>/ (study.stages: data with noise.seed = k, training,
influence, detection, predictor, judge, correction) and every method of
compare.methods is trained for every training seed of compare.seeds on that
noise draw. The table in W/compare/ summarises all (noise seed, training
seed) pairs: mean, std and 95% t-interval per metric, and paired
differences over the pairs (the same noise draw and training seed for both
methods). Detection and correction figures are summarised over the noise
seeds in W/compare/detection.md and correction.md. Every finished stage and
run is reused, so a rerun only redoes what changed.
"""

from __future__ import annotations

import os

import ml_collections

from diffinf_jax import fileio
from diffinf_jax import progress
from diffinf_jax import stats
from diffinf_jax import workdir as wd
from diffinf_jax.pipeline import compare
from diffinf_jax.pipeline import data as data_stage
from diffinf_jax.pipeline import runner
from diffinf_jax.pipeline import tables

NAME = "study"
HELP = "every method over noise seeds x training seeds, with t-intervals"
DESCRIPTION = __doc__.split("\n", 2)[2]
DEPENDS = ()
SECTIONS = ("seed", "data", "noise", "model", "train", "influence",
            "detection", "predictor", "diffae", "guidance", "losses",
            "correction", "judge", "compare", "study")
# Figures of the per-seed stages summarised over the noise seeds.
DETECTION_METRICS = ("precision", "precision_at_k", "recall", "auroc")
CORRECTION_METRICS = ("judge_agreement_flipped_before",
                      "judge_agreement_flipped_after",
                      "judge_agreement_clean_before",
                      "judge_agreement_clean_after", "identity_cos_mean",
                      "lpips_mean")


def seed_config(config, noise_seed: int) -> ml_collections.ConfigDict:
  """The config of one noise draw: noise.seed replaced, its stages."""
  cfg = ml_collections.ConfigDict(config.to_dict())
  cfg.noise.seed = int(noise_seed)
  cfg.run.stages = tuple(config.study.stages)
  cfg.lock()
  return cfg


def seed_workdir(workdir: str, noise_seed: int) -> str:
  return wd.path(workdir, f"noise{int(noise_seed)}")


def _merge(into: dict, rows: list[tables.Row]) -> None:
  for r in rows:
    if r.method not in into:
      into[r.method] = tables.Row(r.method, r.label, r.group, r.noise_rate,
                                  {}, [])
    into[r.method].runs.update(r.runs)


def _summary_table(values: dict[str, dict[str, list]], metrics, title: str
                   ) -> str:
  """Markdown of {row: {metric: [value per noise seed]}} with intervals."""
  head = [title] + list(metrics)
  lines = ["| " + " | ".join(head) + " |",
           "|" + "|".join(" --- " for _ in head) + "|"]
  for name, by_metric in values.items():
    cells = [stats.mean_interval([v for v in by_metric.get(m, [])
                                  if v is not None and v == v]).text()
             for m in metrics]
    lines.append("| " + " | ".join([name] + cells) + " |")
  return "\n".join(lines) + "\n"


def run(config, workdir: str) -> dict:
  rows, skipped = {}, {}
  detection, correction = {}, {}
  seeds = [int(k) for k in config.study.noise_seeds]
  for k in progress.track(seeds, total=len(seeds), desc="study",
                          unit="noise seed"):
    cfg, sub = seed_config(config, k), seed_workdir(workdir, k)
    for stage in cfg.run.stages:
      runner.execute(stage, cfg, sub, replace_stale=True)
    dataset = data_stage.load(cfg, sub)
    seed_rows, seed_skipped = compare.run_methods(
        cfg, sub, dataset, pair_of=lambda s, k=k: (k, s))
    _merge(rows, seed_rows)
    skipped.update({m: f"noise seed {k}: {why}"
                    for m, why in seed_skipped.items()})
    for r in (runner.summary_of("detect", sub) or {}).get("table", []):
      for m in DETECTION_METRICS:
        detection.setdefault(r["detector"], {}).setdefault(m, []).append(
            r[m])
    summary = runner.summary_of("correct", sub) or {}
    for m in CORRECTION_METRICS:
      correction.setdefault("flagged set", {}).setdefault(m, []).append(
          summary.get(m))
  pairs = {(k, int(s)) for k in seeds for s in config.compare.seeds}
  for r in rows.values():
    r.missing = sorted(pairs - set(r.runs))
  out = wd.stage_dir(workdir, NAME)
  ordered = [rows[m] for m in config.compare.methods if m in rows]
  tables.write(out, ordered, skipped)
  fileio.write_text(os.path.join(out, "detection.md"), _summary_table(
      detection, DETECTION_METRICS, "detector"))
  fileio.write_text(os.path.join(out, "correction.md"), _summary_table(
      correction, CORRECTION_METRICS, ""))
  return {"rows": tables.csv_rows(ordered), "skipped": skipped,
          "noise_seeds": seeds, "pairs": len(pairs)}


def summary_line(s: dict) -> str:
  return (f"study: {len(s['rows'])} methods over {s['pairs']} (noise seed, "
          f"training seed) pairs; table in W/compare/table.md")
