"""`diffinf convert bisenet SRC DST`: face-parsing `79999_iter.pth` -> DST/.

Same DST layout as the other converters: `params/` (Orbax variables),
`config.json` (architecture incl. num_classes, input size) and
`manifest.json`. Needs PyTorch only to read the file.
"""

from __future__ import annotations

import os

from weights_convert.arcface import read_state_dict


def configure(parser):
  parser.add_argument("--input-size", type=int, nargs=2, default=(512, 512),
                      metavar=("H", "W"),
                      help="resolution the parser is run at (upstream: 512)")
  parser.add_argument("--num-classes", type=int, default=None,
                      help="fail unless the head has this many classes")
  parser.add_argument("--source-dtype", default="auto",
                      choices=("auto", "float16", "float32"),
                      help="fail unless the file stores this precision")


def convert(src: str, dst: str, input_size=(512, 512), num_classes=None,
            source_dtype: str = "auto") -> dict:
  """Converts SRC into the DST layout; returns the manifest dict."""
  from diffinf_jax.convert import bisenet as mapping
  from diffinf_jax.convert import kit
  from diffinf_jax import weights

  sd = read_state_dict(src)
  variables, cfg, src_dtype, prefix = mapping.convert_state_dict(
      sd, what=src, expect_dtype=source_dtype, input_size=tuple(input_size))
  if num_classes is not None and cfg.num_classes != num_classes:
    raise ValueError(f"{src}: the head has {cfg.num_classes} classes, not "
                     f"--num-classes {num_classes}")
  manifest = {
      "kind": "bisenet",
      "source_file": os.path.basename(src),
      "source_sha256": kit.sha256_file(src),
      "source_prefix": prefix,
      "num_source_keys": len(sd),
      "num_params": mapping.num_params(variables),
      "dtype": src_dtype,
  }
  weights.write_converted(dst, variables, cfg.to_dict(), manifest)
  return manifest


def main(args) -> int:
  m = convert(args.src, args.dst, input_size=args.input_size,
              num_classes=args.num_classes, source_dtype=args.source_dtype)
  print(f"wrote {args.dst}: {m['num_params']:,} parameters from "
        f"{m['num_source_keys']} keys ({m['dtype']})")
  return 0
