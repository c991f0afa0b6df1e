"""`diffinf predictor`: fit the influence predictor h_omega on classifier features (not built yet)."""

from diffinf_jax.stages import common

HELP = "fit the influence predictor h_omega on classifier features [not built yet]"
DESCRIPTION = """fit the influence predictor h_omega on classifier features.

This stage is not built yet (issue 4); it exits with status 3 and writes nothing."""


def configure(parser):
  common.add_config_args(parser)


def main(args):
  return common.not_built("predictor", "issue 4")
