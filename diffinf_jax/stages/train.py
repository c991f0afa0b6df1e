"""`diffinf train`: the ResNet-18 classifier on the noisy training labels."""

from diffinf_jax.stages import common

HELP = "train the classifier on noisy labels; Orbax checkpoints with learning rates"
DESCRIPTION = """Train config.model (ResNet-18 + two-layer head) on the assigned (noisy)
training labels with cross-entropy and Adam, data-parallel over all devices.

Writes W/train/checkpoints/ (Orbax; every train.save_every_epochs and the last
epoch, all kept; metadata step, epoch, learning_rate), W/train/best/,
W/train/history.json, W/train/curves.png, metrics.jsonl and TensorBoard events.
An interrupted run resumes from the latest checkpoint with identical results;
a finished run is not retrained. If W/train was made with another config the
stage stops; pass --force to retrain from scratch."""


def configure(parser):
  common.add_config_args(parser)
  parser.add_argument("--force", action="store_true",
                      help="delete W/train if it was made with another config")


def main(args):
  from diffinf_jax import data
  from diffinf_jax.training import loop
  config, workdir = common.setup_run(args, "train")
  common.guard_outputs(workdir, "train", config,
                       ("seed", "data", "noise", "model", "train"),
                       force=getattr(args, "force", False))
  ds = data.get_dataset(config, workdir)
  summary = loop.train_and_evaluate(config, workdir, ds)
  print(f"train: {summary.get('epochs')} epochs, {summary.get('steps')} "
        f"steps; val accuracy {summary.get('final_val_accuracy')} "
        f"(best {summary.get('best_val_accuracy')})")
  return 0
