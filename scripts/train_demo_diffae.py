"""Trains the demo DiffAE (preset diffae.preset) on the embedded demo faces.

  python scripts/train_demo_diffae.py --config configs/demo.py \
      --workdir runs/demo_weights --out diffinf_jax/assets/weights/demo32/diffae

Writes OUT/{params, config.json, manifest.json} (EMA weights, float16), the
layout of `diffinf convert diffae`; point `diffae.weights_dir` at OUT.
"""

import argparse
import json
import logging
import sys

from diffinf_jax import configuration
from diffinf_jax.pipeline import train_diffae


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--config", default="configs/demo.py")
  p.add_argument("--workdir", default="runs/demo_weights")
  p.add_argument("--out", required=True)
  p.add_argument("--steps", type=int, default=None,
                 help="training steps (default: diffae.train.num_steps)")
  p.add_argument("--max-seconds", type=float, default=0.0,
                 help="stop training after this many seconds (the steps "
                      "done are in the manifest; 0: no limit)")
  p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
  args = p.parse_args(argv)
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
  config = configuration.get_config(args.config, args.set)
  metrics = train_diffae.train_and_save(config, args.workdir, args.out,
                                        args.steps, args.max_seconds)
  print(json.dumps(metrics, indent=2))
  return 0


if __name__ == "__main__":
  sys.exit(main())
