"""`diffinf train`: train the ResNet-18 classifier on noisy labels, saving Orbax checkpoints with learning rates (not built yet)."""

from diffinf_jax.stages import common

HELP = "train the ResNet-18 classifier on noisy labels, saving Orbax checkpoints with learning rates [not built yet]"
DESCRIPTION = """train the ResNet-18 classifier on noisy labels, saving Orbax checkpoints with learning rates.

This stage is not built yet (issue 3); it exits with status 3 and writes nothing."""


def configure(parser):
  common.add_config_args(parser)


def main(args):
  return common.not_built("train", "issue 3")
