"""`diffinf <stage>`: the command-line entry point.

The CLI only parses flags and dispatches to `diffinf_jax.stages.<module>`;
every stage module exposes `HELP` (one line), `DESCRIPTION`, `configure(parser)`
and `main(args) -> int`. Config overrides (`--config.a.b=value`) are collected
into `args.config_overrides`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

# Stage name -> module under diffinf_jax.stages. Order is the order of --help.
STAGES = {
    "run": "run",
    "data": "data",
    "train": "train",
    "influence": "influence",
    "predictor": "predictor",
    "correct": "correct",
    "evaluate": "evaluate",
    "compare": "compare",
    "bench": "bench",
    "convert": "convert",
    "diffae": "diffae_tool",
    "train-diffae": "train_diffae",
}


def _stage_module(name: str):
  return importlib.import_module(f"diffinf_jax.stages.{STAGES[name]}")


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="diffinf",
      description=(
          "DiffInf: find the training images that hurt a classifier (TracIn "
          "self-influence) and repair them with a diffusion autoencoder. "
          "`diffinf run` with no arguments runs the whole method on the "
          "embedded demo data."),
      formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = parser.add_subparsers(dest="stage", metavar="STAGE")
  for name in STAGES:
    module = _stage_module(name)
    p = sub.add_parser(
        name, help=module.HELP, description=module.DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    module.configure(p)
    p.set_defaults(_module=module)
  return parser


def _quiet_libraries() -> None:
  """Keeps TensorFlow/Orbax chatter out of the progress output."""
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  # TensorFlow is only used by clu's writers and TFDS, never for compute.
  os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
  logging.getLogger("absl").setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
  _quiet_libraries()
  argv = list(sys.argv[1:] if argv is None else argv)
  if not argv:
    argv = ["run"]
  parser = build_parser()
  args, unknown = parser.parse_known_args(argv)
  overrides = [u for u in unknown if u.startswith("--config.")]
  rest = [u for u in unknown if not u.startswith("--config.")]
  if rest:
    parser.error(f"unrecognised arguments: {' '.join(rest)}")
  if args.stage is None:
    parser.print_help()
    return 2
  args.config_overrides = overrides
  if args.stage not in ("convert",):
    from diffinf_jax import sharding
    sharding.maybe_initialize_distributed()
  try:
    return int(args._module.main(args) or 0)
  except NotImplementedError as e:
    print(f"diffinf {args.stage}: not built yet ({e}). No output was "
          "written.", file=sys.stderr)
    return 3
  except (FileNotFoundError, KeyError, ValueError) as e:
    # Bad input: one clear line instead of a traceback.
    msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
    print(f"diffinf {args.stage}: error: {msg}", file=sys.stderr)
    return 1


if __name__ == "__main__":
  sys.exit(main())
