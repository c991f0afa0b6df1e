"""Optional PyTorch peers of `diffinf bench influence` on the same weights.

Each runner computes per-sample squared gradient norms over all parameters of
the ResNet-18 + head (`torch_resnet.build_module`, BatchNorm on running
statistics) for the bench's batch, summed cross-entropy, and returns a
no-argument callable giving [n] norms (float64) for its first n samples:

  torch_func       torch.func.vmap(grad) in chunks (materialised gradients)
  opacus           Opacus GradSampleModule: hooks store every parameter's
                   per-sample gradient (`grad_sample`)
  opacus_ghost     Opacus GradSampleModuleFastGradientClipping with ghost
                   clipping: per-sample norms without per-sample gradients
                   where Opacus has a norm sampler (Linear), materialised
                   elsewhere
  captum_tracincp  Captum TracInCP(...).self_influence with its default
                   settings (one backward per example), one checkpoint of
                   learning rate 1, on `CAPTUM_SAMPLES` samples (it is slow)

A peer runs only when its package imports; none is ever required. torch is
imported inside the functions: the bench must run without it.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import warnings
from typing import Callable

import numpy as np

from diffinf_jax.bench import torch_resnet

PEERS = ("torch_func", "opacus", "opacus_ghost", "captum_tracincp")
_PACKAGE = {"torch_func": "torch", "opacus": "opacus",
            "opacus_ghost": "opacus", "captum_tracincp": "captum"}
CAPTUM_SAMPLES = 8


def available(peer: str = "torch_func") -> bool:
  """Whether the packages the peer needs are installed."""
  return all(importlib.util.find_spec(p) is not None
             for p in {"torch", _PACKAGE[peer]})


def supports(model) -> bool:
  """Whether the torch mirror implements this Flax model."""
  from diffinf_jax.models import resnet
  return type(model) is resnet.ResNet18


def _inputs(batch, n=None):
  import torch
  images, labels = np.asarray(batch["image"]), np.asarray(batch["label"])
  n = len(labels) if n is None else min(n, len(labels))
  return (torch_resnet.nchw(images[:n]),
          torch.from_numpy(np.asarray(labels[:n], np.int64)))


def torch_func_runner(variables, batch, chunk: int = 16) -> Callable:
  """torch.func.vmap(grad) norms, `chunk` samples materialised at once."""
  import torch
  import torch.nn.functional as F
  from torch.func import functional_call, grad, vmap
  module = torch_resnet.build_module(variables)
  params = {k: v.detach() for k, v in module.named_parameters()}
  x, y = _inputs(batch)

  def loss_one(p, xi, yi):
    logits = functional_call(module, p, (xi[None],))
    return F.cross_entropy(logits, yi[None], reduction="sum")

  per_sample = vmap(grad(loss_one), in_dims=(None, 0, 0))

  def run():
    out = []
    with torch.no_grad():
      for i in range(0, x.shape[0], chunk):
        grads = per_sample(params, x[i:i + chunk], y[i:i + chunk])
        out.append(sum(g.reshape(g.shape[0], -1).double().pow(2).sum(1)
                       for g in grads.values()))
    return torch.cat(out).numpy()
  return run


def _backward(loss) -> None:
  with warnings.catch_warnings():
    # The stem's input needs no gradient, which Opacus's full backward hooks
    # report on every call; the norms are unaffected.
    warnings.filterwarnings("ignore", message="Full backward hook is firing")
    loss.backward()


def opacus_runner(variables, batch) -> Callable:
  """Opacus per-sample gradients (grad_sample), then their squared norms."""
  import torch.nn.functional as F
  from opacus.grad_sample import GradSampleModule
  gsm = GradSampleModule(torch_resnet.build_module(variables),
                         batch_first=True, loss_reduction="sum", strict=False)
  x, y = _inputs(batch)

  def run():
    gsm.zero_grad(set_to_none=True)
    _backward(F.cross_entropy(gsm(x), y, reduction="sum"))
    sq = sum(p.grad_sample.reshape(len(y), -1).double().pow(2).sum(1)
             for p in gsm.parameters())
    return sq.detach().numpy()
  return run


def opacus_ghost_runner(variables, batch) -> Callable:
  """Opacus ghost clipping's per-sample norms (first backward only)."""
  import torch.nn.functional as F
  from opacus.grad_sample import GradSampleModuleFastGradientClipping
  gsm = GradSampleModuleFastGradientClipping(
      torch_resnet.build_module(variables), batch_first=True,
      loss_reduction="sum", strict=False, use_ghost_clipping=True)
  x, y = _inputs(batch)

  def run():
    gsm.zero_grad(set_to_none=True)
    _backward(F.cross_entropy(gsm(x), y, reduction="sum"))
    return gsm.get_norm_sample().detach().double().pow(2).numpy()
  return run


def captum_runner(variables, batch, samples: int = CAPTUM_SAMPLES
                  ) -> Callable:
  """Captum TracInCP self-influence (lr 1, one checkpoint) = squared norms."""
  import torch
  from captum.influence import TracInCP
  from torch import nn
  module = torch_resnet.build_module(variables)
  x, y = _inputs(batch, samples)
  path = os.path.join(tempfile.mkdtemp(prefix="diffinf_captum_"), "ckpt.pt")
  torch.save(module.state_dict(), path)

  def load(model, ckpt):
    model.load_state_dict(torch.load(ckpt, weights_only=True))
    return 1.0  # the checkpoint's learning rate
  tracin = TracInCP(module, torch.utils.data.TensorDataset(x, y), [path],
                    checkpoints_load_func=load,
                    loss_fn=nn.CrossEntropyLoss(reduction="none"),
                    batch_size=len(y))
  return lambda: tracin.self_influence((x, y)).double().numpy()


def runner(peer: str, variables, batch, vmap_chunk: int) -> Callable:
  """The no-argument callable of `peer` (one of PEERS)."""
  if peer == "torch_func":
    return torch_func_runner(variables, batch, vmap_chunk)
  return {"opacus": opacus_runner, "opacus_ghost": opacus_ghost_runner,
          "captum_tracincp": captum_runner}[peer](variables, batch)
