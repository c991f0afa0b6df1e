"""Set-up shared by the stages: config loading, the run record, messages."""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import logging
import os
import platform
import sys

import ml_collections

from diffinf_jax import configuration
from diffinf_jax import fileio

DEFAULT_WORKDIR = os.path.join("runs", "demo")
_VERSIONED = ("diffinf-jax", "jax", "jaxlib", "flax", "optax",
              "orbax-checkpoint", "numpy", "ml-collections", "clu",
              "tensorflow-cpu", "tensorflow-datasets", "lpips-j", "torch")


def add_config_args(parser: argparse.ArgumentParser) -> None:
  parser.add_argument(
      "--config", default=None, metavar="FILE[:ARG]",
      help="config file (default: configs/demo.py); override any key with "
           "--config.a.b=value")
  parser.add_argument(
      "--workdir", default=None,
      help=f"run directory (default: {DEFAULT_WORKDIR} for the demo)")


def package_versions() -> dict[str, str]:
  out = {"python": platform.python_version()}
  for name in _VERSIONED:
    try:
      out[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      pass
  return out


def load_config(args: argparse.Namespace) -> ml_collections.ConfigDict:
  """The config of this invocation: file + overrides, validated and locked."""
  workdir = args.workdir
  saved = os.path.join(workdir, "config.json") if workdir else None
  if args.config is None and saved and os.path.isfile(saved):
    # Continuing a run: the work dir's own config is the default.
    config = configuration.from_json_file(saved)
    config = configuration.apply_overrides(config, args.config_overrides)
    configuration.validate(config)
    config.lock()
    return config
  return configuration.get_config(args.config, args.config_overrides)


def setup_run(args: argparse.Namespace, stage: str
              ) -> tuple[ml_collections.ConfigDict, str]:
  """Loads the config, creates the work dir and records config + versions."""
  logging.basicConfig(
      level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
      stream=sys.stderr)
  # basicConfig is a no-op once absl has installed its handler.
  logging.getLogger().setLevel(logging.INFO)
  config = load_config(args)
  workdir = args.workdir or DEFAULT_WORKDIR
  os.makedirs(workdir, exist_ok=True)
  fileio.write_json(os.path.join(workdir, "config.json"), config.to_dict())
  fileio.write_json(os.path.join(workdir, "versions.json"), {
      "packages": package_versions(),
      "stage": stage,
      "argv": sys.argv,
      "time": datetime.datetime.now(datetime.timezone.utc).isoformat(),
  })
  return config, workdir


def not_built(stage: str, what: str) -> int:
  """Says clearly that a stage is not implemented yet; produces no output."""
  print(f"diffinf {stage}: not built yet ({what}). No output was written.",
        file=sys.stderr)
  return 3


def guard_outputs(workdir: str, stage_dir: str, config, sections,
                  force: bool = False) -> None:
  """Ties W/<stage_dir> to the config sections it was made from.

  First use records the hash. If the directory was made with other values of
  those sections it is deleted with `force`, otherwise a clear error is
  raised (never a silent restart or a silent mix of two configs).
  """
  import shutil
  from diffinf_jax import configuration
  out = os.path.join(workdir, stage_dir)
  path = os.path.join(out, "config_hash.json")
  h = configuration.config_hash(config, sections)
  if os.path.isfile(path):
    old = fileio.read_json(path).get("hash")
    if old == h:
      return
    if not force:
      raise ValueError(
          f"{out} was made with another config ({', '.join(sections)} "
          f"differ); pass --force to redo it or use another --workdir")
    shutil.rmtree(out)
  elif os.path.isdir(out) and os.listdir(out) and not force:
    raise ValueError(f"{out} exists but has no config_hash.json; pass "
                     "--force to redo it or use another --workdir")
  elif os.path.isdir(out) and force:
    shutil.rmtree(out)
  fileio.write_json(path, {"hash": h, "sections": list(sections)})
