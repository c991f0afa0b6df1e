"""`diffinf bench <what>`: throughput and memory benchmarks that print figures."""

from __future__ import annotations

import importlib

BENCHES = ("train", "influence", "diffae", "correct")
HELP = "benchmarks: " + " | ".join(BENCHES) + " (images/s, peak memory, ratios)"
DESCRIPTION = """Benchmarks that print figures (speed targets are checked here, not in tests).

  diffinf bench train      training-step throughput of the classifier
  diffinf bench influence  per-sample gradient norms: exact vs vmap vs last-layer vs a train step
  diffinf bench diffae     DiffAE encode/decode throughput, gradients through the decode
  diffinf bench correct    corrected images per second of the correction engine

Each takes --config (and config overrides) like a stage and --json for one
JSON object on stdout."""


def configure(parser, add_config_args):
  sub = parser.add_subparsers(dest="bench", metavar="WHAT")
  for name in BENCHES:
    p = sub.add_parser(name, help=f"benchmark: {name}")
    add_config_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    module = importlib.import_module(f"diffinf_jax.bench.{name}")
    if hasattr(module, "configure"):
      module.configure(p)
    p.set_defaults(_bench_module=module)


def main(args, load_config) -> int:
  if getattr(args, "bench", None) is None:
    raise ValueError("name what to benchmark: diffinf bench {"
                     + ",".join(BENCHES) + "}")
  return args._bench_module.main(load_config(args), args)
