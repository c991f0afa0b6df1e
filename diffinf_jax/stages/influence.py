"""`diffinf influence`: TracIn self-influence of every training sample over the checkpoints (not built yet)."""

from diffinf_jax.stages import common

HELP = "TracIn self-influence of every training sample over the checkpoints [not built yet]"
DESCRIPTION = """TracIn self-influence of every training sample over the checkpoints.

This stage is not built yet (issue 4); it exits with status 3 and writes nothing."""


def configure(parser):
  common.add_config_args(parser)


def main(args):
  return common.not_built("influence", "issue 4")
