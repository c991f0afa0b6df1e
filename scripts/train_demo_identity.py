"""Trains the demo-size ArcFace identity net on the embedded demo faces.

  python scripts/train_demo_identity.py --config configs/demo.py \
      --workdir runs/demo --out runs/demo/weights/arcface_demo

Writes OUT/{params, config.json, manifest.json}, the layout of
`diffinf convert arcface`; point `guidance.arcface_weights_dir` at OUT.
"""

import argparse
import json
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from diffinf_jax import configuration  # noqa: E402
from diffinf_jax.training import guidance_trainers  # noqa: E402


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--config", default="configs/demo.py")
  p.add_argument("--workdir", default="runs/demo")
  p.add_argument("--out", required=True, help="output weights directory")
  p.add_argument("--steps", type=int, default=None,
                 help="training steps (default: guidance.train.num_steps)")
  p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                 help="config override, e.g. --set guidance.train.lr=1e-3")
  args = p.parse_args(argv)
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
  config = configuration.get_config(args.config, args.set)
  manifest = guidance_trainers.run_identity(config, args.workdir, args.out,
                                            args.steps)
  print(json.dumps(manifest["metrics"], indent=2))
  return 0


if __name__ == "__main__":
  sys.exit(main())
