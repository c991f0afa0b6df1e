"""`diffinf correct`: repair high-influence images by DiffAE latent optimisation (not built yet)."""

from diffinf_jax.stages import common

HELP = "repair high-influence images by DiffAE latent optimisation [not built yet]"
DESCRIPTION = """repair high-influence images by DiffAE latent optimisation.

This stage is not built yet (issue 7); it exits with status 3 and writes nothing."""


def configure(parser):
  common.add_config_args(parser)


def main(args):
  return common.not_built("correct", "issue 7")
