"""`diffinf convert diffae SRC.ckpt DST`: official DiffAE checkpoint -> Orbax.

Reads a PyTorch Lightning checkpoint of phizaz/diffae (e.g.
ffhq128_autoenc_130M/last.ckpt), takes the `ema_model.` weights (or
`--prefix model.`), builds the architecture from the checkpoint's
hyper-parameters (or `--preset`), maps every key and writes DST/params,
DST/config.json and DST/manifest.json. Needs PyTorch (CPU build is enough).
"""

from __future__ import annotations

import os
import pickle


def configure(parser):
  parser.add_argument("--prefix", default=None,
                      help="weights prefix: ema_model. (default) or model.")
  parser.add_argument("--preset", default=None,
                      help="architecture preset (default: from the "
                           "checkpoint's hyper_parameters)")
  parser.add_argument("--dtype", default="float32",
                      choices=("float32", "float16"),
                      help="storage dtype of the converted weights")


class _Dummy:
  """Stands in for classes a Lightning checkpoint pickles (callbacks)."""

  def __init__(self, *args, **kwargs):
    pass

  def __setstate__(self, state):
    self.state = state


def _load_checkpoint(src: str) -> dict:
  try:
    import torch
  except ImportError:
    raise ImportError("converting DiffAE checkpoints needs PyTorch: "
                      "pip install torch==2.13.0") from None
  if not os.path.isfile(src):
    raise FileNotFoundError(f"{src}: checkpoint not found")
  try:
    return torch.load(src, map_location="cpu", weights_only=True)
  except pickle.UnpicklingError:
    pass  # real Lightning files pickle callback classes: tolerate them

  class Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
      try:
        return super().find_class(module, name)
      except (ImportError, AttributeError):
        return _Dummy

  class PickleModule:
    Unpickler = Unpickler
    load = pickle.load

  try:
    return torch.load(src, map_location="cpu", weights_only=False,
                      pickle_module=PickleModule)
  except Exception as e:
    raise ValueError(f"{src}: not a readable PyTorch checkpoint ({e})") from e


def _architecture(ckpt: dict, preset: str | None):
  from diffinf_jax.models import diffae
  if preset:
    return diffae.get_preset(preset)
  hp = ckpt.get("hyper_parameters") or {}
  if isinstance(hp, dict) and "conf" in hp:
    hp = hp["conf"]
  needed = ("img_size", "net_ch", "net_ch_mult", "net_enc_channel_mult")
  if not all(k in hp for k in needed):
    raise ValueError("the checkpoint has no DiffAE hyper_parameters; pass "
                     "--preset ffhq128 (or another preset)")
  attn = hp.get("net_attn") or (16,)
  return diffae.DiffAEConfig(
      image_size=hp["img_size"], model_channels=hp["net_ch"],
      channel_mult=tuple(hp["net_ch_mult"]),
      num_res_blocks=hp.get("net_num_res_blocks", 2),
      attention_resolutions=tuple(attn),
      embed_channels=hp.get("net_beatgans_embed_channels", 512),
      num_heads=hp.get("net_beatgans_attn_head", 1),
      dropout=hp.get("dropout", 0.1),
      enc_channel_mult=tuple(hp["net_enc_channel_mult"]),
      enc_num_res_blocks=hp.get("net_enc_num_res_blocks", 2),
      enc_attn_resolutions=(None if hp.get("net_enc_attn") is None
                            else tuple(hp["net_enc_attn"])),
      enc_out_channels=hp.get("style_ch", 512))


def convert(src: str, dst: str, prefix: str | None = None,
            preset: str | None = None, dtype: str = "float32") -> dict:
  import jax
  import numpy as np
  from diffinf_jax.convert import common
  from diffinf_jax.convert import diffae as mapping
  from diffinf_jax.models import diffae
  ckpt = _load_checkpoint(src)
  sd = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
  if not isinstance(sd, dict):
    raise ValueError(f"{src}: no state_dict in the checkpoint")
  model_sd, used_prefix = mapping.select_prefix(sd, prefix)
  model_sd = {k: v.detach().cpu().float().numpy() if hasattr(v, "detach")
              else np.asarray(v) for k, v in model_sd.items()}
  cfg = _architecture(ckpt, preset)
  target = jax.eval_shape(lambda: diffae.init_variables(
      diffae.create_model(cfg), jax.random.key(0)))
  variables = mapping.convert_state_dict(model_sd, target, src)
  manifest = {"source_file": os.path.basename(src),
              "source_sha256": common.sha256_file(src),
              "source_prefix": used_prefix,
              "num_source_keys": len(model_sd), "dtype": dtype}
  common.write_converted(dst, variables, cfg.to_dict(), manifest,
                         dtype=None if dtype == "float32" else dtype)
  return manifest


def main(args):
  m = convert(args.src, args.dst, args.prefix, args.preset, args.dtype)
  print(f"convert diffae: {m['num_source_keys']} keys ({m['source_prefix']}) "
        f"-> {args.dst}")
  return 0
