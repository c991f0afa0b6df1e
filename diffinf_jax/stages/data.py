"""`diffinf data`: build the dataset, the split and the training label noise."""

from diffinf_jax.stages import common

HELP = "build the dataset, split and training-label noise (W/data/labels.npz)"
DESCRIPTION = """Build the dataset of a config: render the embedded demo faces (or read FFHQ
thumbnails + Azure attribute labels, or a folder + CSV), assign the seeded
train/val/test split, and flip an exact fraction of TRAINING labels
(noise.kind symmetric: uniform over the other classes; pair: i -> i+1).

Writes W/config.json, W/data/labels.npz (index, noisy_label, clean_label,
flipped, split), W/data/noise.json (rate_requested, rate_realised, num_train,
num_flipped, per_class_rate, transition_matrix) and W/data/summary.json."""


def configure(parser):
  common.add_config_args(parser)
  parser.add_argument("--force", action="store_true",
                      help="rebuild even if W/data matches the config")


def main(args):
  from diffinf_jax.data import dataset
  config, workdir = common.setup_run(args, "data")
  ds = dataset.prepare(config, workdir, force=args.force)
  noise = dataset.fileio.read_json(f"{workdir}/data/noise.json")
  print(f"data: {len(ds.index)} images ({ds.name}, task {ds.task}, "
        f"{ds.num_classes} classes); train {len(ds.positions('train'))}, "
        f"val {len(ds.positions('val'))}, test {len(ds.positions('test'))}; "
        f"{noise['num_flipped']} training labels flipped "
        f"(realised rate {noise['rate_realised']:.4f})")
  return 0
