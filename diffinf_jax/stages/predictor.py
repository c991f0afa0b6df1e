"""`diffinf predictor`: the influence predictor h_omega on classifier features."""

from diffinf_jax.stages import common

HELP = "train the influence predictor h_omega (features + label -> P(high))"
DESCRIPTION = """Fits h_omega, a small MLP on the final classifier's penultimate features
and the one-hot assigned label, to predict "top influence.tau self-influence"
on predictor.holdout_fraction of the training split; reports its AUROC on the
rest. Needs WORKDIR/influence/scores.npy. Writes WORKDIR/predictor/
(params.npz, config.json, metrics.json)."""


def configure(parser):
  common.add_config_args(parser)


def main(args):
  config, workdir = common.setup_run(args, "predictor")
  from diffinf_jax.influence import predictor
  m = predictor.run(config, workdir)
  print(f"predictor: AUROC {m['auroc']:.3f} on {m['eval_size']} held-out "
        f"samples (fit on {m['train_size']})")
  return 0
