"""Optional PyTorch peers of `diffinf bench influence` (torch.func per-sample).

Times `torch.func.vmap(torch.func.grad(loss))` per-sample squared gradient
norms of the same ResNet-18 + head (`diffinf_jax/models/resnet.py`) with the
same weights, BatchNorm in inference mode, on the same batch. The network is
written functionally here (torch.nn.functional on a dict of tensors converted
from the Flax params), so no torch module tree has to mirror the Flax names.
Opacus and Captum are timed only by their own packages, never installed here.

torch is imported inside the functions: the bench must run without it.
"""

from __future__ import annotations

import numpy as np

_STAGES = ((1, 1), (2, 2), (3, 2), (4, 2))  # (stage, stride of its block 0)


def available() -> bool:
  try:
    import torch  # noqa: F401
  except ImportError:
    return False
  return True


def supports(model) -> bool:
  """Whether the torch mirror implements this Flax model."""
  from diffinf_jax.models import resnet
  return type(model) is resnet.ResNet18


def torch_params(variables) -> dict:
  """Flax ResNet-18 variables -> {path: torch tensor} in torch layouts.

  Conv kernels [kh, kw, C_in, C_out] -> [C_out, C_in, kh, kw]; Dense kernels
  [D_in, D_out] -> [D_out, D_in]; BatchNorm keeps (scale, bias, mean, var).
  """
  import torch
  out = {}

  def walk(tree, prefix, kind):
    for k, v in tree.items():
      path = f"{prefix}/{k}" if prefix else k
      if hasattr(v, "items"):
        walk(v, path, kind)
        continue
      a = np.asarray(v, np.float32)
      if kind == "params" and k == "kernel":
        a = a.transpose(3, 2, 0, 1) if a.ndim == 4 else a.T
      out[f"{kind}:{path}"] = torch.from_numpy(np.array(a, order="C"))
  walk(variables["params"], "", "params")
  walk(variables.get("batch_stats", {}), "", "stats")
  return out


def _bn(p, name, x):
  import torch
  scale = p[f"params:{name}/scale"] * torch.rsqrt(
      p[f"stats:{name}/var"] + 1e-5)
  shift = p[f"params:{name}/bias"] - p[f"stats:{name}/mean"] * scale
  return x * scale[:, None, None] + shift[:, None, None]


def forward(p: dict, x):
  """Logits [B, K] of the ResNet-18 + head for NCHW input x, eval mode."""
  import torch
  import torch.nn.functional as F
  k = p["params:stem_conv/kernel"]
  imagenet = k.shape[-1] == 7
  x = F.conv2d(x, k, stride=2 if imagenet else 1, padding=k.shape[-1] // 2)
  x = F.relu(_bn(p, "stem_bn", x))
  if imagenet:
    x = F.max_pool2d(x, 3, 2, padding=1)
  for stage, stride0 in _STAGES:
    for block in range(2):
      name = f"layer{stage}_{block}"
      s = stride0 if block == 0 else 1
      y = F.conv2d(x, p[f"params:{name}/conv1/kernel"], stride=s, padding=1)
      y = F.relu(_bn(p, f"{name}/bn1", y))
      y = F.conv2d(y, p[f"params:{name}/conv2/kernel"], padding=1)
      y = _bn(p, f"{name}/bn2", y)
      if f"params:{name}/downsample_conv/kernel" in p:
        x = F.conv2d(x, p[f"params:{name}/downsample_conv/kernel"], stride=s)
        x = _bn(p, f"{name}/downsample_bn", x)
      x = F.relu(x + y)
  h = torch.mean(x, dim=(2, 3))
  h = F.relu(F.linear(h, p["params:head_hidden/kernel"],
                      p["params:head_hidden/bias"]))
  return F.linear(h, p["params:head_out/kernel"], p["params:head_out/bias"])


def torch_func_sq_norms(p: dict, images: np.ndarray, labels: np.ndarray,
                        chunk: int = 16) -> np.ndarray:
  """[B] per-sample squared norms over all parameters via torch.func.

  Args:
    p: `torch_params` output (batch statistics are constants).
    images: [B, H, W, 3] float32 (NHWC, as the JAX model takes them).
    labels: [B] int.
    chunk: samples whose gradients are materialised at once.
  """
  import torch
  import torch.nn.functional as F
  from torch.func import grad, vmap
  trainable = {k: v for k, v in p.items() if k.startswith("params:")}
  stats = {k: v for k, v in p.items() if k.startswith("stats:")}

  def loss_one(w, x, y):
    logits = forward({**w, **stats}, x[None])
    return F.cross_entropy(logits, y[None], reduction="sum")

  per_sample = vmap(grad(loss_one), in_dims=(None, 0, 0))
  x = torch.from_numpy(np.array(images.transpose(0, 3, 1, 2), np.float32,
                                order="C"))
  y = torch.from_numpy(np.asarray(labels, np.int64))
  out = []
  with torch.no_grad():
    for i in range(0, x.shape[0], chunk):
      grads = per_sample(trainable, x[i:i + chunk], y[i:i + chunk])
      out.append(sum(g.reshape(g.shape[0], -1).double().pow(2).sum(1)
                     for g in grads.values()))
  return torch.cat(out).numpy()


def torch_func_runner(variables, batch, chunk: int = 16):
  """A no-argument callable returning the [B] torch.func squared norms.

  The weights are converted once, outside the timed call.
  """
  p = torch_params(variables)
  images, labels = np.asarray(batch["image"]), np.asarray(batch["label"])
  return lambda: torch_func_sq_norms(p, images, labels, chunk)
