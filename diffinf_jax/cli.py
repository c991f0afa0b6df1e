"""`diffinf <command>`: the command-line entry point, a thin adapter.

Pipeline stages (`diffinf_jax.pipeline.STAGES`) and `diffinf run` take
`--config FILE[:ARG] --workdir DIR [--config.a.b=value ...]`; the config is
loaded and fully validated before any work starts, then the stage runs
through `pipeline.runner.execute`. The tools (bench, convert, diffae) have
their own arguments. Bad input ends with one line on stderr (`--verbose`
shows the traceback).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

DEFAULT_WORKDIR = os.path.join("runs", "demo")
TOOLS = {"bench": "bench", "convert": "convert", "diffae": "diffae"}
# What a user can get wrong: reported as one line, not a traceback.
USER_ERRORS = (FileNotFoundError, KeyError, ValueError, FloatingPointError)


def add_config_args(parser: argparse.ArgumentParser) -> None:
  parser.add_argument(
      "--config", default=None, metavar="FILE[:ARG]",
      help="config file (default: the work dir's config.json, else "
           "configs/demo.py); override any key with --config.a.b=value")
  parser.add_argument(
      "--workdir", default=None,
      help=f"run directory (default: {DEFAULT_WORKDIR})")


def _add_common(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--verbose", action="store_true",
                      help="show full tracebacks and library logs")


def build_parser() -> argparse.ArgumentParser:
  from diffinf_jax import pipeline
  from diffinf_jax.pipeline import run as run_module
  parser = argparse.ArgumentParser(
      prog="diffinf",
      description=(
          "DiffInf: find the training images that hurt a classifier (TracIn "
          "self-influence) and repair them with a diffusion autoencoder. "
          "`diffinf run` runs the whole method (with no --config: the "
          "embedded demo)."),
      formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = parser.add_subparsers(dest="command", metavar="COMMAND")
  fmt = argparse.RawDescriptionHelpFormatter
  p = sub.add_parser("run", help=run_module.HELP,
                     description=run_module.DESCRIPTION, formatter_class=fmt)
  add_config_args(p)
  _add_common(p)
  for name in pipeline.STAGES:
    module = pipeline.get(name)
    p = sub.add_parser(name, help=module.HELP, description=module.DESCRIPTION,
                       formatter_class=fmt)
    add_config_args(p)
    _add_common(p)
    p.add_argument("--force", action="store_true",
                   help="redo this stage even if its outputs are up to date "
                        "or were made with another config")
    if hasattr(module, "add_arguments"):
      module.add_arguments(p)
  for name, mod in TOOLS.items():
    module = importlib.import_module(f"diffinf_jax.tools.{mod}")
    p = sub.add_parser(name, help=module.HELP, description=module.DESCRIPTION,
                       formatter_class=fmt)
    _add_common(p)
    module.configure(p, add_config_args)
    p.set_defaults(_tool=module)
  return parser


def _quiet_libraries(verbose: bool) -> None:
  """Keeps TensorFlow/Orbax/asyncio chatter out of the output."""
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  # TensorFlow is only used by clu's writers and TFDS, never for compute.
  os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
  logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                      format="%(asctime)s %(levelname)s %(message)s")
  # basicConfig is a no-op once absl has installed its handler.
  logging.getLogger().setLevel(logging.INFO)
  if not verbose:
    # A corrupt checkpoint makes Orbax's worker threads log tracebacks of
    # their own; the one line that matters is the error we raise.
    for name in ("absl", "orbax", "asyncio", "jax"):
      logging.getLogger(name).setLevel(logging.CRITICAL)


def _initialize_distributed() -> None:
  from diffinf_jax import sharding
  try:
    sharding.maybe_initialize_distributed()
  except Exception as e:  # jax raises RuntimeError/ValueError variants
    raise ValueError(
        f"DIFFINF_DISTRIBUTED=1 but jax.distributed.initialize() failed "
        f"({str(e).splitlines()[0] if str(e) else type(e).__name__}); set "
        "the coordinator variables (JAX_COORDINATOR_ADDRESS, "
        "JAX_NUM_PROCESSES, JAX_PROCESS_ID) or run under SLURM / a TPU pod, "
        "or unset DIFFINF_DISTRIBUTED for a single host") from e


def _load_config(args):
  from diffinf_jax import configuration
  from diffinf_jax import pipeline
  from diffinf_jax import workdir as wd
  workdir = args.workdir or DEFAULT_WORKDIR
  config = configuration.load(args.config, args.config_overrides,
                              saved=os.path.join(workdir, wd.CONFIG))
  pipeline.check_config(config)
  return config


def _dispatch(args) -> int:
  if hasattr(args, "_tool"):
    return int(args._tool.main(args, _load_config) or 0)
  from diffinf_jax import pipeline
  from diffinf_jax.pipeline import runner
  config = _load_config(args)
  workdir = args.workdir or DEFAULT_WORKDIR
  os.makedirs(workdir, exist_ok=True)
  if args.command == "run":
    from diffinf_jax.pipeline import run as run_module
    return run_module.run(config, workdir)
  module = pipeline.get(args.command)
  options = {k: v for k, v in vars(args).items()
             if k in getattr(module, "OPTIONS", ())}
  summary = runner.execute(args.command, config, workdir, force=args.force,
                           **options)
  line = module.summary_line(summary)
  if summary.get("up_to_date"):
    line += " (up to date: reused)"
  print(line)
  return 0


def main(argv: list[str] | None = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  parser = build_parser()
  args, unknown = parser.parse_known_args(argv)
  overrides = [u for u in unknown if u.startswith("--config.")]
  rest = [u for u in unknown if not u.startswith("--config.")]
  if rest:
    parser.error(f"unrecognised arguments: {' '.join(rest)}")
  if args.command is None:
    parser.print_help()
    return 2
  args.config_overrides = overrides
  verbose = getattr(args, "verbose", False)
  _quiet_libraries(verbose)
  try:
    if args.command != "convert":
      _initialize_distributed()
      from diffinf_jax import sharding
      sharding.enable_compilation_cache()
    return _dispatch(args)
  except USER_ERRORS as e:
    if verbose:
      raise
    msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
    print(f"diffinf {args.command}: error: {msg}", file=sys.stderr)
    return 1


if __name__ == "__main__":
  sys.exit(main())
