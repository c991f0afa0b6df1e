"""`diffinf convert <what> SRC DST`: official PyTorch checkpoints -> Orbax."""

from __future__ import annotations

import importlib

CONVERTERS = ("diffae", "arcface", "bisenet")
HELP = ("convert official PyTorch checkpoints (diffae | arcface | bisenet) to "
        "Orbax")
DESCRIPTION = """Convert a user-supplied PyTorch checkpoint into DST/ (Orbax params),
DST/config.json (architecture) and DST/manifest.json (source sha256, key counts).
Needs PyTorch: pip install torch==2.13.0

  diffinf convert diffae  last.ckpt weights/diffae_ffhq128
  diffinf convert arcface backbone.pth weights/arcface_r50
  diffinf convert bisenet 79999_iter.pth weights/bisenet"""


def configure(parser, add_config_args=None):
  del add_config_args  # converters take no run config
  sub = parser.add_subparsers(dest="converter", metavar="WHAT")
  for name in CONVERTERS:
    p = sub.add_parser(name, help=f"convert a {name} checkpoint")
    p.add_argument("src", help="source checkpoint file")
    p.add_argument("dst", help="output directory")
    module = importlib.import_module(f"weights_convert.{name}")
    if hasattr(module, "configure"):
      module.configure(p)
    p.set_defaults(_convert_module=module)


def main(args, load_config=None) -> int:
  del load_config
  if getattr(args, "converter", None) is None:
    raise ValueError("name the checkpoint kind: diffinf convert {"
                     + ",".join(CONVERTERS) + "} SRC DST")
  return args._convert_module.main(args)
