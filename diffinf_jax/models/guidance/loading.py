"""Builds frozen guidance networks from converted or demo-trained weights.

Converted (`diffinf convert arcface|bisenet`) and demo-trained
(`scripts/train_demo_*.py`) weights share one layout, DST/{params,
config.json, manifest.json}, read by `diffinf_jax.convert.common`.
"""

from __future__ import annotations

import os
from typing import Callable

import jax

from diffinf_jax.models.guidance import arcface
from diffinf_jax.models.guidance import face_parsing
from diffinf_jax.models.guidance import transforms

_HOW = {
    "arcface": ("an insightface backbone.pth (e.g. ms1mv3_arcface_r50_fp16/"
                "backbone.pth)", "diffinf convert arcface backbone.pth {dir}",
                "python scripts/train_demo_identity.py --out {dir}"),
    "bisenet": ("face-parsing.PyTorch's 79999_iter.pth",
                "diffinf convert bisenet 79999_iter.pth {dir}",
                "python scripts/train_demo_parsing.py --out {dir}"),
}


def _load(kind: str, weights_dir: str):
  from diffinf_jax.convert import common
  what, convert, train = _HOW[kind]
  weights_dir = common.resolve_weights_dir(weights_dir)
  if not weights_dir or not os.path.isdir(weights_dir):
    raise FileNotFoundError(
        f"{kind} weights directory {weights_dir!r} not found: convert "
        f"{what} with `{convert.format(dir=weights_dir or 'DIR')}` or, for "
        f"the demo, train one with `{train.format(dir=weights_dir or 'DIR')}`"
        ", then set the config key to that directory")
  return common.load_converted(weights_dir)


def load_arcface(weights_dir: str):
  """(IResNet model, variables, ArcFaceConfig) from a weights directory."""
  variables, config, _ = _load("arcface", weights_dir)
  cfg = arcface.ArcFaceConfig.from_dict(config)
  return arcface.IResNet(cfg), variables, cfg


def load_bisenet(weights_dir: str, input_size=None):
  """(BiSeNet model, variables, BiSeNetConfig); input_size overrides config."""
  variables, config, _ = _load("bisenet", weights_dir)
  cfg = face_parsing.BiSeNetConfig.from_dict(config)
  if input_size:
    cfg = face_parsing.BiSeNetConfig.from_dict(
        {**cfg.to_dict(), "input_size": list(input_size)})
  return face_parsing.BiSeNet(cfg), variables, cfg


def identity_embed_fn(weights_dir: str, crop: transforms.FaceCrop | str = "ffhq"
                      ) -> Callable[[jax.Array], jax.Array]:
  """x [B, H, W, 3] in [-1, 1] -> raw ArcFace embeddings [B, D] (crop incl.)."""
  model, variables, cfg = load_arcface(weights_dir)
  if isinstance(crop, str):
    crop = transforms.crop_preset(crop, cfg.input_size)
  if tuple(crop.out_size) != cfg.input_size:
    raise ValueError(f"face crop gives {crop.out_size}, the ArcFace net in "
                     f"{weights_dir} takes {cfg.input_size}")

  def fn(x):
    return model.apply(variables, transforms.arcface_input(x, crop))
  return fn


def parsing_logits_fn(weights_dir: str, input_size=None
                      ) -> Callable[[jax.Array], jax.Array]:
  """x [B, H, W, 3] in [-1, 1] -> main-head logits [B, h, w, K] at input_size."""
  model, variables, cfg = load_bisenet(weights_dir, input_size)

  def fn(x):
    return model.apply(variables,
                       transforms.parsing_input(x, cfg.input_size))[0]
  return fn
