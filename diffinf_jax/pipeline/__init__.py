"""The stages of DiffInf, one module each, chained through the work dir.

Every stage module exposes

  NAME, HELP, DESCRIPTION   its command name and help texts
  DEPENDS                   stages whose outputs it reads (must be up to date)
  OPTIONAL_DEPENDS          stages it reads when present (e.g. compare reads
                            W/correct for the DiffInf method)
  SECTIONS                  config sections its own result depends on
  run(config, workdir, **options) -> summary dict
  summary_line(summary) -> str
  add_arguments(parser)     optional stage-specific command-line flags

and is executed through `runner.execute`, which skips a stage whose outputs
are up to date, redoes (and invalidates everything downstream of) a stage
whose inputs changed, and records what each output was made from. The CLI
and `diffinf run` both go through this registry.
"""

from __future__ import annotations

import importlib

# Command name -> module, in pipeline order (the order of `diffinf --help`).
STAGES = {
    "data": "data",
    "train": "train",
    "influence": "influence",
    "detect": "detect",
    "predictor": "predictor",
    "judge": "judge",
    "correct": "correct",
    "evaluate": "evaluate",
    "compare": "compare",
    "study": "study",
    "train-diffae": "train_diffae",
}


def get(name: str):
  """The module of stage `name`."""
  if name not in STAGES:
    raise ValueError(f"unknown stage {name!r}; stages: {list(STAGES)}")
  return importlib.import_module(f"diffinf_jax.pipeline.{STAGES[name]}")


def downstream(name: str) -> list[str]:
  """Every stage that reads `name`'s outputs, directly or transitively."""
  out, frontier = [], [name]
  while frontier:
    current = frontier.pop()
    for other in STAGES:
      module = get(other)
      deps = tuple(module.DEPENDS) + tuple(getattr(module, "OPTIONAL_DEPENDS",
                                                   ()))
      if current in deps and other not in out:
        out.append(other)
        frontier.append(other)
  return out


def check_config(config) -> None:
  """The config's names of stages and methods exist (checked when read)."""
  from diffinf_jax.pipeline import compare
  for stage in config.run.stages:
    if stage not in STAGES:
      raise ValueError(f"config run.stages: unknown stage {stage!r}; use "
                       f"names from {list(STAGES)}")
  if "study" in config.run.stages and "compare" in config.run.stages:
    raise ValueError("config run.stages: `study` writes W/compare itself; "
                     "list either compare or study")
  for stage in config.study.stages:
    if stage not in STAGES or stage in ("study", "compare"):
      raise ValueError(f"config study.stages: {stage!r} is not a per-seed "
                       f"stage; use names from {list(STAGES)} but study and "
                       "compare")
  specs = [compare.parse_method(m) for m in config.compare.methods]
  if len({s.text for s in specs}) != len(specs):
    raise ValueError("config compare.methods lists a method twice")
  _check_detection(config.detection)
  if not config.compare.seeds:
    raise ValueError("config compare.seeds is empty; give at least one seed")


def _check_detection(d) -> None:
  from diffinf_jax.detection import registry
  registry.check_names(tuple(d.detectors))
  registry.check_names(tuple(d.ensemble.members), registry.ENSEMBLE_KEY)
  if d.flag_by not in d.detectors:
    raise ValueError(f"config detection.flag_by={d.flag_by!r} is not among "
                     f"detection.detectors {list(d.detectors)}; add it")
  for spec in d.extra_flag_sets:
    name, sep, size = str(spec).partition(":")
    ok = sep and name in d.detectors and (size == "auto" or _fraction(size))
    if not ok:
      raise ValueError(f"config detection.extra_flag_sets: {spec!r} must be "
                       "DETECTOR:TAU (0 < TAU <= 1) or DETECTOR:auto with a "
                       f"detector of detection.detectors {list(d.detectors)}")
  feats = {"pixels", "vgg16_relu3_3"}
  bad = [f for f in d.crossfit.features if f not in feats]
  if bad or not d.crossfit.features:
    raise ValueError("config detection.crossfit.features="
                     f"{list(d.crossfit.features)}: use names from "
                     f"{sorted(feats)}")
  if d.crossfit.width_multiplier != -1 and d.crossfit.width_multiplier <= 0:
    raise ValueError("config detection.crossfit.width_multiplier must be -1 "
                     "(the model's) or > 0")


def _fraction(text: str) -> bool:
  try:
    return 0.0 < float(text) <= 1.0
  except ValueError:
    return False
