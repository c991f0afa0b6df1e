"""`diffinf diffae`: DiffAE encode / decode / reconstruct arrays with converted weights (not built yet)."""

from diffinf_jax.stages import common

HELP = "DiffAE encode / decode / reconstruct arrays with converted weights [not built yet]"
DESCRIPTION = """DiffAE encode / decode / reconstruct arrays with converted weights.

This stage is not built yet (issue 5); it exits with status 3 and writes nothing."""


def configure(parser):
  common.add_config_args(parser)


def main(args):
  return common.not_built("diffae", "issue 5")
