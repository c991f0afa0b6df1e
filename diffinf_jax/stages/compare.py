"""`diffinf compare`: noisy-label baselines on the same split and seeds."""

from diffinf_jax.stages import common

HELP = "compare noisy-label baselines and DiffInf on the same split and seeds"
DESCRIPTION = """Train every method of config.compare.methods (ce, small_loss, coteaching,
elr, elr_plus, proselflc, promix, influence_removal, diffinf) for every seed of
config.compare.seeds on the same noisy split and evaluate on the clean test
split. Finished runs are reused.

Writes W/compare/table.csv (method, seeds, accuracy_mean, accuracy_std,
auroc_mean, auroc_std, kappa_linear_mean, kappa_linear_std), table.md,
table.png, detection.csv (precision/recall/AUROC of self-influence, small-loss
and, if cleanlab is installed, confident learning against the flip mask) and
each method's run dir W/compare/<method>/seed<k>/. influence_removal needs
W/influence, diffinf needs W/correct; methods whose inputs are missing are
listed as not run."""


def configure(parser):
  common.add_config_args(parser)


def main(args):
  from diffinf_jax import compare
  config, workdir = common.setup_run(args, "compare")
  compare.run(config, workdir)
  print(open(f"{workdir}/compare/table.md").read().rstrip())
  return 0
