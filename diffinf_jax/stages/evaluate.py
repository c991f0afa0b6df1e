"""`diffinf evaluate`: evaluate a classifier on the clean test split (accuracy, AUROC, kappa) (not built yet)."""

from diffinf_jax.stages import common

HELP = "evaluate a classifier on the clean test split (accuracy, AUROC, kappa) [not built yet]"
DESCRIPTION = """evaluate a classifier on the clean test split (accuracy, AUROC, kappa).

This stage is not built yet (issue 3); it exits with status 3 and writes nothing."""


def configure(parser):
  common.add_config_args(parser)


def main(args):
  return common.not_built("evaluate", "issue 3")
