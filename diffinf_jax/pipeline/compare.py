"""`diffinf compare`: noisy-label baselines, DiffInf and ceilings, same split."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil

import ml_collections

from diffinf_jax import configuration
from diffinf_jax import fileio
from diffinf_jax import progress
from diffinf_jax import workdir as wd
from diffinf_jax.data import refined
from diffinf_jax.pipeline import data as data_stage
from diffinf_jax.pipeline import evaluate as evaluate_stage
from diffinf_jax.pipeline import runner
from diffinf_jax.pipeline import tables
from diffinf_jax.training import methods

NAME = "compare"
HELP = "compare noisy-label baselines, DiffInf and ceilings on the same split"
DESCRIPTION = """Train every method of config.compare.methods for every training seed of
config.compare.seeds on the run's noisy split and evaluate it on the clean
test split; finished runs are reused.

A method is NAME or NAME@QUALIFIER:
  ce, small_loss, coteaching, elr, elr_plus, proselflc, promix
                      the baselines; small_loss, coteaching and promix are
                      told the true noise rate, @estimated the
                      confident-learning estimate of W/detect instead
  influence_removal, diffinf
                      cross-entropy without / with the corrected images of
                      the flagged set (@DETECTOR:TAU|auto picks another
                      flagged set of detection.flag_sets)
  clean               ceiling: cross-entropy on the clean labels
  relabel, drop_flipped, recon
                      controls at the flagged set: relabelled to the clean
                      label (a perfect correction), only its flipped samples
                      dropped (a perfect filter), or replaced by the DiffAE
                      round trip without optimisation

Writes W/compare/table.{csv,md,png} (mean, std and 95% t-interval per
metric; "n/a (1 seed)" with one run), differences.csv and forest.png (paired
differences: each method minus CE, DiffInf minus removal of the same set,
DiffInf minus the best baseline) and each run in W/compare/<method>/seed<k>/."""
DEPENDS = ("data",)
OPTIONAL_DEPENDS = ("detect", "correct")
SECTIONS = ("seed", "data", "noise", "model", "train", "compare")

BASELINE_LABELS = {"ce": "Original noisy (CE)", "small_loss": "Small loss",
                   "coteaching": "Co-teaching", "elr": "ELR",
                   "elr_plus": "ELR+", "proselflc": "ProSelfLC",
                   "promix": "ProMix"}
# Baselines that need the noise rate (Co-teaching's R(T), ProMix's rho).
RATE_METHODS = ("small_loss", "coteaching", "promix")
# Methods that train cross-entropy on a dataset derived from a stage:
# name -> (label, group, the stage whose output they read).
DATA_METHODS = {
    "influence_removal": ("Self-influence removal", "removal", "detect"),
    "diffinf": ("DiffInf", "diffinf", "correct"),
    "clean": ("Clean labels (ceiling)", "ceiling", None),
    "relabel": ("Flagged set relabelled clean (ceiling)", "ceiling",
                "detect"),
    "drop_flipped": ("Flipped among flagged dropped (ceiling)", "ceiling",
                     "detect"),
    "recon": ("Reconstruction only (control)", "ceiling", "correct"),
}


@dataclasses.dataclass(frozen=True)
class MethodSpec:
  """A method of the comparison: `name` or `name@qualifier`."""
  text: str
  name: str
  qualifier: str = ""

  @property
  def stage(self) -> str | None:
    return DATA_METHODS[self.name][2] if self.name in DATA_METHODS else None

  @property
  def label(self) -> str:
    base = (BASELINE_LABELS.get(self.name) or DATA_METHODS[self.name][0])
    if self.qualifier == "estimated":
      return f"{base} (estimated rate)"
    return f"{base} [{self.qualifier}]" if self.qualifier else base

  @property
  def group(self) -> str:
    return DATA_METHODS[self.name][1] if self.name in DATA_METHODS else (
        "baseline")

  @property
  def noise_rate(self) -> str:
    if self.name not in RATE_METHODS:
      return "-"
    return "estimated" if self.qualifier == "estimated" else "true"


def parse_method(text: str) -> MethodSpec:
  """`name[@qualifier]` -> MethodSpec.

  Raises:
    ValueError: an unknown name, or a qualifier the method does not take
      (one line naming `compare.methods`).
  """
  name, _, qual = str(text).partition("@")
  valid = list(methods.METHODS) + list(DATA_METHODS)
  if name not in valid:
    raise ValueError(f"config compare.methods: unknown method {name!r} in "
                     f"{text!r}; use names from {valid}")
  if qual and name in methods.METHODS and (
      name not in RATE_METHODS or qual != "estimated"):
    raise ValueError(f"config compare.methods: {text!r}: only "
                     f"{list(RATE_METHODS)} take a qualifier (@estimated)")
  if qual and name == "clean":
    raise ValueError(f"config compare.methods: {text!r}: clean takes no "
                     "qualifier")
  return MethodSpec(str(text), name, qual)


def method_config(config, seed: int, spec: MethodSpec,
                  workdir: str) -> ml_collections.ConfigDict:
  """The run config of one (method, seed): seed, epochs and, for
  `@estimated`, the noise rate the method is told."""
  cfg = ml_collections.ConfigDict(config.to_dict())
  cfg.seed = int(seed)
  if int(config.compare.num_epochs) > 0:
    cfg.train.num_epochs = int(config.compare.num_epochs)
    cfg.train.save_every_epochs = min(int(cfg.train.save_every_epochs),
                                      cfg.train.num_epochs)
  if spec.qualifier == "estimated":
    cfg.train.assumed_noise_rate = round(wd.noise_rate_estimate(workdir), 6)
  cfg.lock()
  return cfg


def method_dataset(spec: MethodSpec, config, workdir: str, dataset):
  """The training data of a method: the run's, or one derived from it.

  Raises:
    FileNotFoundError: the stage the method reads is not current.
  """
  if spec.stage and not runner.up_to_date(spec.stage, config, workdir):
    raise FileNotFoundError(f"needs a current "
                            f"{wd.stage_dir(workdir, spec.stage)} (run "
                            f"`diffinf {spec.stage}`)")
  if spec.name == "clean":
    return refined.clean_view(dataset)
  if spec.group == "baseline":
    return dataset
  flagged = wd.flagged_indices(workdir, config, spec.qualifier)
  if spec.name == "influence_removal":
    return refined.remove_indices(dataset, flagged)
  if spec.name == "relabel":
    return refined.relabel_clean(dataset, flagged)
  if spec.name == "drop_flipped":
    return refined.drop_flipped(dataset, flagged)
  key = "reconstruction" if spec.name == "recon" else "image"
  return refined.replace_images(dataset, flagged,
                                wd.corrected_images(workdir, flagged, key))


def _fingerprint(config, spec: MethodSpec, workdir: str, cfg) -> dict:
  return {"config": configuration.config_hash(
      cfg, ("seed", "data", "noise", "model", "train")),
          "method": spec.text,
          "inputs": runner.read_stamp(workdir, spec.stage)["stamp"]
          if spec.stage else ""}


def run_one(config, workdir: str, dataset, spec: MethodSpec,
            seed: int) -> dict:
  """Trains and evaluates one (method, seed), reusing a matching finished run."""
  cfg = method_config(config, seed, spec, workdir)
  out = wd.compare_run_dir(workdir, spec.text, seed)
  run_dir, eval_dir = wd.run_parts(out)
  fp = _fingerprint(config, spec, workdir, cfg)
  fp_path = os.path.join(out, "fingerprint.json")
  metrics_path = os.path.join(eval_dir, "metrics.json")
  if os.path.isfile(fp_path) and os.path.isfile(metrics_path):
    if fileio.read_json(fp_path) == fp:
      return fileio.read_json(metrics_path)
  if os.path.isdir(out):
    shutil.rmtree(out)  # a stale or half-finished run of another config
  name = spec.name if spec.group == "baseline" else "ce"
  methods.train_method(name, cfg, dataset, run_dir)
  m = evaluate_stage.evaluate_run(cfg, dataset, run_dir, eval_dir)
  fileio.write_json(fp_path, fp)
  logging.info("compare: %s seed %d: accuracy %.4f", spec.text, seed,
               m["accuracy"])
  return m


def run_methods(config, workdir: str, dataset, pair_of=lambda seed: seed
                ) -> tuple[list[tables.Row], dict]:
  """Every (method, training seed) of the config: rows keyed by pair."""
  specs = [parse_method(m) for m in config.compare.methods]
  seeds = [int(s) for s in config.compare.seeds]
  rows = {s.text: tables.Row(s.text, s.label, s.group, s.noise_rate, {}, [])
          for s in specs}
  skipped, datasets = {}, {}
  jobs = [(s, seed) for s in specs for seed in seeds]
  for spec, seed in progress.track(jobs, total=len(jobs), desc="compare",
                                   unit="run"):
    if spec.text in skipped:
      continue
    try:
      if spec.text not in datasets:
        datasets[spec.text] = method_dataset(spec, config, workdir, dataset)
      rows[spec.text].runs[pair_of(seed)] = run_one(
          config, workdir, datasets[spec.text], spec, seed)
    except FileNotFoundError as e:
      skipped[spec.text] = str(e)
      logging.warning("compare: skipping %s (%s)", spec.text, e)
  kept = [r for r in rows.values() if r.method not in skipped]
  return kept, skipped


def run(config, workdir: str) -> dict:
  """Runs the comparison; returns its rows and the methods not run."""
  dataset = data_stage.load(config, workdir)
  rows, skipped = run_methods(config, workdir, dataset)
  tables.write(wd.stage_dir(workdir, NAME), rows, skipped)
  return {"rows": tables.csv_rows(rows), "skipped": skipped}


def summary_line(s: dict) -> str:
  done = [r for r in s["rows"] if r["runs"]]
  best = max(done, key=lambda r: r["accuracy_mean"], default=None)
  text = f"compare: {len(done)} methods"
  if best:
    text += f"; best accuracy {best['accuracy_mean']:.4f} ({best['label']})"
  if s["skipped"]:
    text += f"; not run: {', '.join(s['skipped'])}"
  return text + "; table in W/compare/table.md"
