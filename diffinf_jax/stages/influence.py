"""`diffinf influence`: TracIn self-influence of every training sample."""

from diffinf_jax.stages import common

HELP = "TracIn self-influence of every training sample over the checkpoints"
DESCRIPTION = """TracIn self-influence I(i) = sum_t lr_t ||grad loss_i(theta_t)||^2.

Reads WORKDIR/train/checkpoints (learning rate from each checkpoint's
metadata, or influence.learning_rates), scores the training split with
BatchNorm in inference mode (influence.method: exact | vmap | last_layer) over
all devices, and writes WORKDIR/influence/: scores.npy, index.npy,
per_checkpoint.npy, scores.csv, detection.json (top influence.tau flagged vs
flipped labels), histograms.png, top_flagged.png. An interrupted run resumes
from the saved chunks in WORKDIR/influence/partial/."""


def configure(parser):
  common.add_config_args(parser)


def main(args):
  config, workdir = common.setup_run(args, "influence")
  from diffinf_jax import sharding
  from diffinf_jax.influence import tracin
  sharding.maybe_initialize_distributed()
  out = tracin.run(config, workdir)
  d = out["detection"]
  print(f"influence: {d['num_samples']} samples, {out['num_checkpoints']} "
        f"checkpoints; top {d['tau']:.0%}: precision {d['precision']:.3f} "
        f"(random {d['random_precision']:.3f}), recall {d['recall']:.3f}, "
        f"AUROC {d['auroc_flip']:.3f}")
  return 0
