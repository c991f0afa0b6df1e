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


# What a DiffAE checkpoint legitimately needs to unpickle: tensor rebuild
# helpers, containers and plain values. Anything else (Lightning callbacks,
# optimiser classes, and any callable a malicious file might name) becomes an
# inert _Dummy, so reading a checkpoint never runs foreign code.
_ALLOWED_MODULES = ("torch._utils", "torch._tensor", "torch.nn.parameter",
                    "torch.storage", "collections", "numpy.core.multiarray",
                    "numpy._core.multiarray", "numpy")
_ALLOWED_NUMPY = ("scalar", "dtype", "_reconstruct", "ndarray")
_SAFE_BUILTINS = ("set", "frozenset", "list", "dict", "tuple", "slice",
                  "complex", "int", "float", "str", "bytes", "bytearray",
                  "bool", "range")


def _allowed(module: str, name: str) -> bool:
  if module == "builtins":
    return name in _SAFE_BUILTINS
  if module.startswith("numpy"):
    return module in _ALLOWED_MODULES and (
        name in _ALLOWED_NUMPY or name.endswith("DType"))
  if module == "torch":
    import torch
    return name in ("Size", "device") or isinstance(
        getattr(torch, name, None), torch.dtype)
  if module in ("torch._utils", "torch._tensor"):
    return name.startswith("_rebuild")
  return module in _ALLOWED_MODULES


class _TolerantUnpickler(pickle.Unpickler):
  """Maps classes outside the allow-list (Lightning callbacks...) to _Dummy."""

  def find_class(self, module, name):
    if not _allowed(module, name):
      return _Dummy
    try:
      return super().find_class(module, name)
    except (ImportError, AttributeError):
      return _Dummy


class _TolerantPickle:
  """`pickle_module` for torch.load: pickle with the tolerant Unpickler."""
  Unpickler = _TolerantUnpickler
  load = pickle.load


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
  except Exception:  # noqa: BLE001 (torch raises several types)
    pass  # real Lightning files pickle callback classes: tolerate them

  try:
    return torch.load(src, map_location="cpu", weights_only=False,
                      pickle_module=_TolerantPickle)
  except Exception as e:
    raise ValueError(f"{src}: not a readable PyTorch checkpoint ({e})") from e


# Upstream TrainConfig values this port implements (others change the
# architecture or its numerics and are refused rather than mis-converted).
_SUPPORTED = {
    "model_type": ("autoencoder",),
    "model_name": ("beatgans_autoenc",),
    "net_resblock_updown": (True,),
    "net_beatgans_resnet_two_cond": (True,),
    "net_beatgans_resnet_scale_at": ("afternorm",),
    "net_beatgans_resnet_cond_channels": (None,),
    "net_enc_pool": ("adaptivenonzero",),
    "net_enc_use_time": (False,),
    "net_autoenc_stochastic": (False,),
    "beta_scheduler": ("linear",),
    "T": (1000,),
}


def check_hyper_parameters(hp: dict, what: str) -> None:
  """Raises ValueError naming every unsupported upstream setting."""
  bad = [f"{k}={hp[k]!r} (supported: {v})" for k, v in _SUPPORTED.items()
         if k in hp and hp[k] not in v]
  n_in = hp.get("net_num_input_res_blocks")
  if n_in not in (None, hp.get("net_num_res_blocks", 2)):
    bad.append(f"net_num_input_res_blocks={n_in!r} (supported: None)")
  if bad:
    raise ValueError(f"{what}: DiffAE variant not supported by this port: "
                     + "; ".join(bad))


def _architecture(ckpt: dict, preset: str | None, what: str = "checkpoint"):
  """DiffAEConfig from --preset or the checkpoint's TrainConfig hparams."""
  from diffinf_jax.models import diffae
  if preset:
    return diffae.get_preset(preset)
  hp = ckpt.get("hyper_parameters") or {}
  if isinstance(hp, dict) and "conf" in hp:
    hp = hp["conf"]
  needed = ("img_size", "net_ch", "net_ch_mult", "net_enc_channel_mult")
  if not isinstance(hp, dict) or not all(k in hp for k in needed):
    raise ValueError(f"{what}: no DiffAE hyper_parameters in the checkpoint; "
                     "pass --preset ffhq128 (or another preset)")
  check_hyper_parameters(hp, what)
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
  from diffinf_jax.convert import kit
  from diffinf_jax import weights
  from diffinf_jax.convert import diffae as mapping
  from diffinf_jax.models import diffae
  ckpt = _load_checkpoint(src)
  sd = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
  if not isinstance(sd, dict):
    raise ValueError(f"{src}: no state_dict in the checkpoint")
  model_sd, used_prefix = mapping.select_prefix(sd, prefix)
  bad = [k for k, v in model_sd.items()
         if hasattr(v, "is_floating_point") and not v.is_floating_point()]
  if bad:
    raise ValueError(f"{src}: non-float entries under {used_prefix!r}: "
                     f"{bad[:8]}; is this a DiffAE checkpoint?")
  model_sd = {k: v.detach().cpu().float().numpy() if hasattr(v, "detach")
              else np.asarray(v, np.float32) for k, v in model_sd.items()}
  cfg = _architecture(ckpt, preset, src)
  target = jax.eval_shape(lambda: diffae.init_variables(
      diffae.create_model(cfg), jax.random.key(0)))
  variables = mapping.convert_state_dict(model_sd, target, src)
  manifest = {"source_file": os.path.basename(src),
              "source_sha256": kit.sha256_file(src),
              "source_prefix": used_prefix,
              "num_source_keys": len(model_sd), "dtype": dtype}
  weights.write_converted(dst, variables, cfg.to_dict(), manifest,
                         dtype=None if dtype == "float32" else dtype)
  return manifest


def main(args):
  m = convert(args.src, args.dst, args.prefix, args.preset, args.dtype)
  print(f"convert diffae: {m['num_source_keys']} keys ({m['source_prefix']}) "
        f"-> {args.dst}")
  return 0
