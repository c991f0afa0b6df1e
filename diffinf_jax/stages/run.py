"""`diffinf run`: the whole method, stage after stage, in one work dir."""

from __future__ import annotations

import importlib
import os
import sys
import time

from diffinf_jax.stages import common

HELP = "run the whole method (data -> train -> influence -> ... -> compare)"
DESCRIPTION = """Run every stage of DiffInf in order in one work dir:
data -> train -> influence -> predictor -> correct -> evaluate -> compare
(the list is config.run.stages). With no arguments this runs the embedded demo
(configs/demo.py) in runs/demo on the CPU.

Each stage skips work whose outputs already exist for the same config, so an
interrupted run resumes. Stages that are not built yet are reported and the
run stops there, naming them. W/run.json records status and seconds per stage."""

_MODULES = {"data": "data", "train": "train", "influence": "influence",
            "predictor": "predictor", "correct": "correct",
            "evaluate": "evaluate", "compare": "compare"}


def configure(parser):
  common.add_config_args(parser)


def _stage_args(module, workdir: str):
  """The stage's own defaults; the work dir's saved config drives it."""
  import argparse
  parser = argparse.ArgumentParser()
  module.configure(parser)
  stage_args = parser.parse_args(["--workdir", workdir])
  stage_args.config = None
  stage_args.config_overrides = []
  return stage_args


def main(args):
  from diffinf_jax import configuration
  from diffinf_jax import fileio
  from diffinf_jax import report
  config, workdir = common.setup_run(args, "run")
  record_path = os.path.join(workdir, "run.json")
  record = {}
  for stage in config.run.stages:
    if stage not in _MODULES:
      raise ValueError(f"config run.stages: unknown stage {stage!r}; valid: "
                       f"{sorted(_MODULES)}")
    module = importlib.import_module(f"diffinf_jax.stages.{_MODULES[stage]}")
    stage_args = _stage_args(module, workdir)
    # Training redoes its work dir only when the config changed (otherwise it
    # resumes or skips); the other stages check their own inputs.
    stage_args.force = stage == "train"
    t0 = time.time()
    try:
      code = module.main(stage_args)
    except NotImplementedError as e:
      print(f"diffinf {stage}: not built yet ({e})", file=sys.stderr)
      code = 3
    except Exception as e:
      record[stage] = {"status": f"failed: {e}",
                       "seconds": round(time.time() - t0, 2),
                       "config_hash": configuration.config_hash(config)}
      fileio.write_json(record_path, record)
      report.write_report(workdir)
      raise
    seconds = round(time.time() - t0, 2)
    status = {0: "done", 3: "not built"}.get(code, f"failed ({code})")
    record[stage] = {"status": status, "seconds": seconds,
                     "config_hash": configuration.config_hash(config)}
    fileio.write_json(record_path, record)
    print(f"[run] {stage}: {status} in {seconds:.1f} s", file=sys.stderr)
    if code != 0:
      not_built = [s for s in config.run.stages if s not in record]
      not_built = [stage] + not_built if code == 3 else not_built
      print(f"[run] stopped at '{stage}' ({status}); remaining stages: "
            f"{', '.join(not_built) or 'none'}. Finished stages are kept in "
            f"{workdir}.", file=sys.stderr)
      report.write_report(workdir)
      return 0 if code == 3 else code
  md_path, _ = report.write_report(workdir)
  print(f"[run] all stages done; report: {md_path}", file=sys.stderr)
  return 0
