"""`diffinf train-diffae`: train a (small) DiffAE on the run's training images."""

from __future__ import annotations

import os

from diffinf_jax import argtypes

NAME = "train-diffae"
HELP = "train a small DiffAE (encoder + UNet, eps loss, EMA) on a dataset"
DESCRIPTION = """Train the DiffAE preset config.diffae.preset jointly (semantic encoder +
conditional UNet) with upstream's epsilon-prediction loss and an EMA of the
weights, on the training split of the config's dataset. Orbax checkpoints in
W/diffae_train/checkpoints (resumable), reconstruction and sample grids
W/diffae_train/{recon,sample}_*.png, and the EMA weights written to --out in
the layout of `diffinf convert diffae` (float16)."""
DEPENDS = ("data",)
SECTIONS = ("diffae", "seed")
PROTECT_STALE = True
OPTIONS = ("out", "steps")


def add_arguments(parser) -> None:
  parser.add_argument("--out", default=None,
                      help="weights directory (default: W/diffae_weights)")
  parser.add_argument("--steps", type=argtypes.positive_int, default=None,
                      help="training steps (default: diffae.train.num_steps)")


def run(config, workdir: str, *, out: str | None = None,
        steps: int | None = None) -> dict:
  from diffinf_jax.training import diffae_trainer
  out = out or os.path.join(workdir, "diffae_weights")
  metrics = diffae_trainer.run(config, workdir, out, steps)
  return dict(metrics, weights_dir=out)


def summary_line(m: dict) -> str:
  return (f"train-diffae: {m['num_steps']} steps; reconstruction MSE "
          f"{m['recon_mse_init']:.4f} -> {m['recon_mse_final']:.4f}; weights "
          f"in {m['weights_dir']}")
