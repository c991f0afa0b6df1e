"""Executing a stage: skip what is up to date, redo what is stale, record it.

Each finished stage writes W/<stage>/stamp.json, last:

  inputs       {config: hash of the stage's config SECTIONS,
                <dependency>: that dependency's stamp}
  inputs_id    hash of `inputs`
  stamp        hash of inputs_id and the stage's output digest (if any):
               what downstream stages record as this stage's identity
  summary, seconds, finished

A stage is up to date when its stamp exists and its inputs equal what the
current config and the current stamps of its dependencies give. A stage
whose inputs changed is stale: its directory is cleared before it runs again
(stages holding expensive work, `PROTECT_STALE`, ask for --force first), and
the stamps of every stage downstream of it are removed, so nothing computed
from the old outputs is ever reused or reported as current. An interrupted
stage has no stamp; it runs again and resumes from its own partial files
(which carry their own fingerprints).
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import logging
import os
import platform
import shutil
import sys
import time

from diffinf_jax import configuration
from diffinf_jax import fileio
from diffinf_jax import pipeline
from diffinf_jax import workdir as wd

log = logging.getLogger(__name__)

_VERSIONED = ("diffinf-jax", "jax", "jaxlib", "flax", "optax",
              "orbax-checkpoint", "numpy", "ml-collections", "clu", "cleanlab",
              "scikit-learn", "tensorflow-cpu", "tensorflow-datasets",
              "lpips-j", "torch")


def package_versions() -> dict[str, str]:
  out = {"python": platform.python_version()}
  for name in _VERSIONED:
    try:
      out[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      pass
  return out


def _hash(obj) -> str:
  return configuration.config_hash({"v": obj}, ("v",))


def _stamp_path(workdir: str, name: str) -> str:
  return os.path.join(wd.stage_dir(workdir, name), wd.STAMP)


def read_stamp(workdir: str, name: str) -> dict | None:
  """The stamp of a finished stage, or None (never run, interrupted,
  invalidated or unreadable)."""
  path = _stamp_path(workdir, name)
  if not os.path.isfile(path):
    return None
  try:
    return fileio.read_json(path)
  except ValueError:
    return None


def _dependencies(module, config, workdir: str) -> dict[str, str]:
  """{dependency: its current stamp} (optional ones only when current)."""
  deps = {}
  for dep in module.DEPENDS:
    if not up_to_date(dep, config, workdir):
      raise FileNotFoundError(
          f"{wd.stage_dir(workdir, dep)}: not done for this config (or made "
          f"from other inputs); run `diffinf {dep}` first")
    deps[dep] = read_stamp(workdir, dep)["stamp"]
  for dep in getattr(module, "OPTIONAL_DEPENDS", ()):
    if up_to_date(dep, config, workdir):
      deps[dep] = read_stamp(workdir, dep)["stamp"]
  return deps


def expected_inputs(name: str, config, workdir: str) -> dict:
  """What stage `name`'s outputs must have been made from, now."""
  module = pipeline.get(name)
  return {"config": configuration.config_hash(config, module.SECTIONS),
          **_dependencies(module, config, workdir)}


def up_to_date(name: str, config, workdir: str) -> bool:
  """Whether W/<name> is finished and made from the current inputs."""
  rec = read_stamp(workdir, name)
  if rec is None:
    return False
  try:
    return rec.get("inputs_id") == _hash(expected_inputs(name, config,
                                                         workdir))
  except FileNotFoundError:
    return False


def invalidate_downstream(name: str, workdir: str) -> None:
  """Removes the stamps of every stage that read `name`'s old outputs."""
  for other in pipeline.downstream(name):
    path = _stamp_path(workdir, other)
    if os.path.isfile(path):
      os.remove(path)
      log.info("%s is out of date now (it was made from the old %s)",
               wd.stage_dir(workdir, other), name)
  for f in (os.path.join(workdir, wd.REPORT_MD),
            os.path.join(workdir, wd.REPORT_HTML)):
    if os.path.isfile(f):
      os.remove(f)


def _has_outputs(path: str) -> bool:
  return os.path.isdir(path) and any(n != wd.STAMP for n in os.listdir(path))


def _clear(module, name: str, config, workdir: str, *, force: bool,
           replace_stale: bool, stale: bool) -> None:
  out = wd.stage_dir(workdir, name)
  if not _has_outputs(out):
    return
  if (stale and getattr(module, "PROTECT_STALE", False) and not force
      and not replace_stale):
    raise ValueError(
        f"{out} was made with another config or from other inputs; pass "
        "--force to redo it or use another --workdir")
  shutil.rmtree(out)
  invalidate_downstream(name, workdir)


def record_config(config, workdir: str, stage: str) -> None:
  """W/config.json and W/versions.json: the config that made the outputs."""
  fileio.write_json(os.path.join(workdir, wd.CONFIG), config.to_dict())
  fileio.write_json(os.path.join(workdir, wd.VERSIONS), {
      "packages": package_versions(), "stage": stage, "argv": sys.argv,
      "time": datetime.datetime.now(datetime.timezone.utc).isoformat()})


def execute(name: str, config, workdir: str, *, force: bool = False,
            replace_stale: bool = False, **options) -> dict:
  """Runs stage `name` unless it is up to date; returns its summary.

  Args:
    force: redo the stage even if it is up to date (and replace outputs a
      PROTECT_STALE stage would otherwise refuse to discard).
    replace_stale: discard stale outputs of PROTECT_STALE stages without
      asking (what `diffinf run` does when the config changed).
    options: stage-specific keyword arguments of `run`.

  Returns:
    the stage's summary; `up_to_date` is True when nothing was recomputed.
  """
  module = pipeline.get(name)
  for dep in module.DEPENDS:
    if dep == "data" and not up_to_date("data", config, workdir):
      execute("data", config, workdir)  # cheap, and every stage needs it
  inputs = expected_inputs(name, config, workdir)
  inputs_id = _hash(inputs)
  rec = read_stamp(workdir, name)
  if rec is not None and rec.get("inputs_id") == inputs_id and not force:
    return dict(rec["summary"], up_to_date=True)
  stale = rec is not None and rec.get("inputs_id") != inputs_id
  if stale or force:
    _clear(module, name, config, workdir, force=force,
           replace_stale=replace_stale, stale=stale)
  if os.path.isfile(_stamp_path(workdir, name)):
    os.remove(_stamp_path(workdir, name))
  t0 = time.time()
  summary = module.run(config, workdir, **options)
  seconds = round(time.time() - t0, 2)
  stamp = _hash([inputs_id, summary.get("output_digest")])
  fileio.write_json(_stamp_path(workdir, name), {
      "inputs": inputs, "inputs_id": inputs_id, "stamp": stamp,
      "summary": summary, "seconds": seconds,
      "finished": datetime.datetime.now(datetime.timezone.utc).isoformat()})
  record_config(config, workdir, name)
  return dict(summary, up_to_date=False)


def summary_of(name: str, workdir: str) -> dict | None:
  rec = read_stamp(workdir, name)
  return None if rec is None else rec["summary"]


def to_json(summary: dict) -> str:
  return json.dumps(summary, sort_keys=True, default=str)
