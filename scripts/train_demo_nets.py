"""Trains the demo-size guidance networks on the embedded demo faces.

  python scripts/train_demo_nets.py identity --config configs/demo.py \
      --workdir runs/demo_weights --out diffinf_jax/assets/weights/demo32/arcface
  python scripts/train_demo_nets.py parsing --config configs/demo.py \
      --workdir runs/demo_weights --out diffinf_jax/assets/weights/demo32/parsing

`identity`: an IResNet embedding trained with a CosFace-style margin over the
demo identity ids; `parsing`: a BiSeNet trained on the demo parsing maps.
Writes OUT/{params, config.json, manifest.json}, the layout of `diffinf
convert arcface|bisenet`; point guidance.arcface_weights_dir /
guidance.parsing_weights_dir at OUT.
"""

import argparse
import json
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from diffinf_jax import configuration  # noqa: E402
from diffinf_jax.models.guidance import trainers  # noqa: E402
from diffinf_jax.pipeline import data as data_stage  # noqa: E402

RUNS = {"identity": trainers.run_identity, "parsing": trainers.run_parsing}


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("net", choices=sorted(RUNS))
  p.add_argument("--config", default="configs/demo.py")
  p.add_argument("--workdir", default="runs/demo_weights")
  p.add_argument("--out", required=True, help="output weights directory")
  p.add_argument("--steps", type=int, default=None,
                 help="training steps (default: guidance.train.num_steps)")
  p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                 help="config override, e.g. --set guidance.train.lr=1e-3")
  args = p.parse_args(argv)
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
  config = configuration.get_config(args.config, args.set)
  dataset = data_stage.load(config, args.workdir)
  manifest = RUNS[args.net](config, dataset, args.out, args.steps)
  print(json.dumps(manifest["metrics"], indent=2))
  return 0


if __name__ == "__main__":
  sys.exit(main())
