"""`diffinf train-diffae`: train a small DiffAE on the run's training images."""

from diffinf_jax.stages import common

HELP = "train a small DiffAE (encoder + UNet, eps loss, EMA) on a dataset"
DESCRIPTION = """Train the DiffAE preset config.diffae.preset jointly (semantic encoder +
conditional UNet) with upstream's epsilon-prediction loss and an EMA of the
weights, on the training split of the config's dataset. Orbax checkpoints in
W/diffae_train/checkpoints (resumable), reconstruction and sample grids
W/diffae_train/{recon,sample}_*.png, and the EMA weights written to --out in the layout
of `diffinf convert diffae` (float16)."""


def configure(parser):
  common.add_config_args(parser)
  parser.add_argument("--out", default=None,
                      help="weights directory (default: W/diffae_weights)")
  parser.add_argument("--steps", type=int, default=None)


def main(args):
  import os
  from diffinf_jax.training import diffae_trainer
  config, workdir = common.setup_run(args, "train-diffae")
  out = args.out or os.path.join(workdir, "diffae_weights")
  m = diffae_trainer.run(config, workdir, out, args.steps)
  print(f"train-diffae: {m['num_steps']} steps; reconstruction MSE "
        f"{m['recon_mse_init']:.4f} -> {m['recon_mse_final']:.4f}; weights "
        f"in {out}")
  return 0
