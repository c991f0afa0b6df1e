"""`diffinf bench <what>`: throughput and memory benchmarks that print figures."""

from __future__ import annotations

import importlib

from diffinf_jax.stages import common

BENCHES = ("train", "influence", "diffae", "correct")
HELP = "benchmarks: " + " | ".join(BENCHES) + " (images/s, peak memory, ratios)"
DESCRIPTION = """Benchmarks that print figures (speed targets are checked here, not in tests).

  diffinf bench train      training-step throughput of the classifier
  diffinf bench influence  per-sample gradient norms: exact vs vmap vs last-layer vs a train step
  diffinf bench diffae     DiffAE encode/decode throughput, gradients through the decode
  diffinf bench correct    corrected images per second of the correction engine

Each takes --config/--workdir like a stage and --json for one JSON object on stdout."""


def configure(parser):
  sub = parser.add_subparsers(dest="bench", metavar="WHAT")
  for name in BENCHES:
    p = sub.add_parser(name, help=f"benchmark: {name}")
    common.add_config_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    try:
      module = importlib.import_module(f"diffinf_jax.bench.{name}")
    except ModuleNotFoundError:
      module = None
    if module is not None and hasattr(module, "configure"):
      module.configure(p)
    p.set_defaults(_bench_module=module)


def main(args):
  if getattr(args, "bench", None) is None:
    raise ValueError("name what to benchmark: diffinf bench {"
                     + ",".join(BENCHES) + "}")
  if args._bench_module is None:
    return common.not_built(f"bench {args.bench}", "its issue is open")
  return args._bench_module.main(args)
