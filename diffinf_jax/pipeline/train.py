"""`diffinf train`: the classifier on the noisy labels, checkpoints for TracIn."""

from __future__ import annotations

from diffinf_jax import checkpointing
from diffinf_jax import workdir as wd
from diffinf_jax.pipeline import data as data_stage
from diffinf_jax.training import loop

NAME = "train"
HELP = ("train the classifier on noisy labels; Orbax checkpoints with "
        "learning rates")
DESCRIPTION = """Train config.model (ResNet-18 + two-layer head) on the assigned (noisy)
training labels with cross-entropy and Adam, data-parallel over all devices.

Writes W/train/checkpoints/ (Orbax; every train.save_every_epochs and the last
epoch, all kept; metadata step, epoch, learning_rate = the mean rate since the
previous checkpoint, TracIn's eta_t), W/train/best/, W/train/history.json,
W/train/curves.png, metrics.jsonl and TensorBoard events. An interrupted run
resumes from the latest checkpoint with identical results; a finished run is
not retrained. If W/train was made with another config the stage stops; pass
--force to retrain from scratch (everything computed from the old classifier
is then invalidated)."""
DEPENDS = ("data",)
SECTIONS = loop.TRAIN_SECTIONS
PROTECT_STALE = True


def run(config, workdir: str) -> dict:
  dataset = data_stage.load(config, workdir)
  summary = loop.train(config, dataset, wd.train_dir(workdir))
  found = checkpointing.list_checkpoints(wd.checkpoint_dir(
      wd.train_dir(workdir)))
  # The identity of the result: every checkpoint's weights (influence and
  # everything downstream are invalidated when any of them changes).
  summary["output_digest"] = [c["variables_digest"] for c in found]
  return summary


def summary_line(s: dict) -> str:
  return (f"train: {s.get('epochs')} epochs, {s.get('steps')} steps; val "
          f"accuracy {s.get('final_val_accuracy')} (best "
          f"{s.get('best_val_accuracy')})")
