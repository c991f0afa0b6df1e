"""`diffinf compare`: compare noisy-label baselines on the same split and seeds (not built yet)."""

from diffinf_jax.stages import common

HELP = "compare noisy-label baselines on the same split and seeds [not built yet]"
DESCRIPTION = """compare noisy-label baselines on the same split and seeds.

This stage is not built yet (issue 8); it exits with status 3 and writes nothing."""


def configure(parser):
  common.add_config_args(parser)


def main(args):
  return common.not_built("compare", "issue 8")
