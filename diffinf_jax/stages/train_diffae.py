"""`diffinf train-diffae`: train a small DiffAE (encoder + UNet) on a dataset (not built yet)."""

from diffinf_jax.stages import common

HELP = "train a small DiffAE (encoder + UNet) on a dataset [not built yet]"
DESCRIPTION = """train a small DiffAE (encoder + UNet) on a dataset.

This stage is not built yet (issue 5); it exits with status 3 and writes nothing."""


def configure(parser):
  common.add_config_args(parser)


def main(args):
  return common.not_built("train-diffae", "issue 5")
