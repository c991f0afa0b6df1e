"""`diffinf run`: the whole method, stage after stage, in one work dir."""

from __future__ import annotations

import logging
import os
import sys
import time

from diffinf_jax import configuration
from diffinf_jax import fileio
from diffinf_jax import pipeline
from diffinf_jax import workdir as wd
from diffinf_jax.pipeline import report
from diffinf_jax.pipeline import runner

HELP = "run the whole method (data -> train -> influence -> ... -> compare)"
DESCRIPTION = """Run every stage of DiffInf in order in one work dir (config.run.stages:
data -> train -> influence -> predictor -> judge -> correct -> evaluate ->
compare). With no --config this runs the embedded demo (configs/demo.py) in
runs/demo on the CPU.

Stages whose outputs are up to date for the config are reused, so an
interrupted run resumes; a stage whose inputs changed is redone and
everything downstream of it with it. W/run.json records status and seconds
per stage; W/report.md and report.html are written at the end, or where the
run stopped."""


def run(config, workdir: str) -> int:
  """Runs config.run.stages; returns the process exit code."""
  record_path = os.path.join(workdir, wd.RUN_RECORD)
  record = {}
  h = configuration.config_hash(config)
  for stage in config.run.stages:
    module = pipeline.get(stage)
    t0 = time.time()
    try:
      summary = runner.execute(stage, config, workdir, replace_stale=True)
    except Exception as e:
      record[stage] = {"status": f"failed: {e}",
                       "seconds": round(time.time() - t0, 2),
                       "config_hash": h}
      fileio.write_json(record_path, record)
      report.write_report(workdir)
      remaining = list(config.run.stages)[len(record):]
      print(f"[run] stopped at '{stage}'; remaining stages: "
            f"{', '.join(remaining) or 'none'}. Finished stages are kept in "
            f"{workdir}.", file=sys.stderr)
      raise
    seconds = round(time.time() - t0, 2)
    status = "up to date" if summary.get("up_to_date") else "done"
    record[stage] = {"status": status, "seconds": seconds, "config_hash": h}
    fileio.write_json(record_path, record)
    logging.info("[run] %s: %s in %.1f s", stage, status, seconds)
    print(module.summary_line(summary), flush=True)
  md_path, _ = report.write_report(workdir)
  print(f"[run] all stages done; report: {md_path}", file=sys.stderr)
  return 0
