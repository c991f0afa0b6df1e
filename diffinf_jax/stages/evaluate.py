"""`diffinf evaluate`: accuracy, macro AUROC and kappa on the clean test split."""

from diffinf_jax.stages import common

HELP = "evaluate the trained classifier on the clean test split (accuracy, AUROC, kappa)"
DESCRIPTION = """Evaluate the final checkpoint in W/train on the clean test split.

Writes W/eval/metrics.json (accuracy, auroc_macro_ovr, kappa_linear, kappa,
per_class_accuracy, confusion_matrix, num_test), metrics.md, confusion.png and
predictions.npz (index, probs, label). AUROC is one-vs-rest from softmax
probabilities, macro-averaged over classes 0..K-1; kappa_linear is Cohen's
kappa with linear weights (ordinal age), kappa the unweighted one."""


def configure(parser):
  common.add_config_args(parser)
  parser.add_argument("--train-subdir", default="train",
                      help="which training run of the work dir (default: train)")
  parser.add_argument("--out-subdir", default="eval")


def main(args):
  from diffinf_jax import data
  from diffinf_jax import evaluation
  config, workdir = common.setup_run(args, "evaluate")
  ds = data.get_dataset(config, workdir)
  m = evaluation.evaluate(config, workdir, ds, train_subdir=args.train_subdir,
                          out_subdir=args.out_subdir)
  print(f"evaluate: accuracy {m['accuracy']:.4f}, macro AUROC "
        f"{m['auroc_macro_ovr']:.4f}, kappa (linear) {m['kappa_linear']:.4f} "
        f"on {m['num_test']} {m['split']} images")
  return 0
