"""`diffinf correct`: repair high-influence images by DiffAE latent optimisation."""

from diffinf_jax.stages import common

HELP = "repair the high-influence images by DiffAE latent optimisation (D')"
DESCRIPTION = """Repair the top-tau self-influence training images: encode each to
(z_sem, x_T) with the DiffAE, optimise the latents through a rematerialised
DDIM decode under the identity, structural, perceptual and influence-predictor
losses (config sections losses, correction), and keep labels unchanged.

Needs W/influence (run `diffinf influence`), W/predictor (`diffinf predictor`)
and the weights in config.diffae.weights_dir / config.guidance.*_weights_dir.
Writes W/correct/images/*.png, corrected.npz (index, image), results.npz,
summary.json and before/after grids per class. Resumable per chunk; when clean
labels are known, an oracle classifier trained on them judges each image
before and after."""


def configure(parser):
  common.add_config_args(parser)


def main(args):
  from diffinf_jax.correction import stage
  config, workdir = common.setup_run(args, "correct")
  s = stage.run(config, workdir)
  line = (f"correct: {s['num_corrected']} images, LPIPS {s['lpips_mean']:.4f}, "
          f"p(assigned) {s['p_assigned_before']:.3f} -> "
          f"{s['p_assigned_after']:.3f}")
  if s.get("p_high_before") is not None:
    line += f", p_high {s['p_high_before']:.3f} -> {s['p_high_after']:.3f}"
  if s.get("oracle_agreement_flipped_before") is not None:
    before = s["oracle_agreement_flipped_before"]
    after = s["oracle_agreement_flipped_after"]
    line += f"; oracle agrees on flipped {before:.3f} -> {after:.3f}"
  print(line)
  return 0
