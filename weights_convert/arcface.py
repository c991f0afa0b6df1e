"""`diffinf convert arcface SRC DST`: insightface backbone.pth -> DST/ (Orbax).

SRC is an arcface_torch `backbone.pth` (plain state dict, fp32 or fp16; a
DataParallel `module.` prefix is stripped). DST gets `params/` (Orbax: the Flax
variables {'params', 'batch_stats'}), `config.json` (architecture) and
`manifest.json` (source sha256, key counts, dtype). Needs PyTorch only to read
the file; the mapping itself is `diffinf_jax.convert.arcface`.
"""

from __future__ import annotations

import os

ARCHES = ("auto", "iresnet18", "iresnet34", "iresnet50", "iresnet100",
          "iresnet200", "demo")


def configure(parser):
  parser.add_argument("--arch", default="auto", choices=ARCHES,
                      help="expected architecture (auto: read from the keys)")
  parser.add_argument("--input-size", type=int, nargs=2, default=None,
                      metavar=("H", "W"),
                      help="input size the model was trained at (default: "
                           "112x112 for a 7x7 final map)")
  parser.add_argument("--source-dtype", default="auto",
                      choices=("auto", "float16", "float32"),
                      help="fail unless the file stores this precision")


def _torch():
  try:
    import torch
  except ImportError:
    raise ImportError("reading .pth files needs PyTorch: pip install "
                      "torch==2.13.0 (CPU build)") from None
  return torch


def read_state_dict(src: str) -> dict:
  """torch.load(src) -> {name: numpy array}, keeping each tensor's dtype.

  Accepts a plain state dict or one wrapped as {'state_dict': ...} /
  {'model': ...}. bfloat16 tensors become float32 (numpy has no bfloat16).
  """
  if not os.path.isfile(src):
    raise FileNotFoundError(f"{src}: checkpoint not found")
  torch = _torch()
  try:
    obj = torch.load(src, map_location="cpu", weights_only=True)
  except Exception as e:  # noqa: BLE001 (torch raises many types here)
    raise ValueError(f"{src}: not a loadable PyTorch checkpoint ({e})") from e
  for key in ("state_dict", "model"):
    if isinstance(obj, dict) and isinstance(obj.get(key), dict):
      obj = obj[key]
  if not isinstance(obj, dict) or not all(
      isinstance(v, torch.Tensor) for v in obj.values()):
    raise ValueError(f"{src}: expected a state dict of tensors, got "
                     f"{type(obj).__name__}")
  out = {}
  for k, v in obj.items():
    v = v.detach().cpu()
    if v.dtype == torch.bfloat16:
      v = v.float()
    out[k] = v.numpy()
  return out


def convert(src: str, dst: str, arch: str = "auto", input_size=None,
            source_dtype: str = "auto") -> dict:
  """Converts SRC into the DST layout; returns the manifest dict."""
  from diffinf_jax.convert import arcface as mapping
  from diffinf_jax.convert import kit
  from diffinf_jax import weights
  from diffinf_jax.models.guidance import arcface

  sd = read_state_dict(src)
  cfg = None
  if arch != "auto":
    over = {"input_size": tuple(input_size)} if input_size else {}
    cfg = arcface.preset(arch, **over)
  variables, cfg, src_dtype, prefix = mapping.convert_state_dict(
      sd, cfg, what=src, expect_dtype=source_dtype,
      input_size=tuple(input_size) if input_size else None)
  manifest = {
      "kind": "arcface",
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
  m = convert(args.src, args.dst, arch=args.arch, input_size=args.input_size,
              source_dtype=args.source_dtype)
  print(f"wrote {args.dst}: {m['num_params']:,} parameters from "
        f"{m['num_source_keys']} keys ({m['dtype']})")
  return 0
