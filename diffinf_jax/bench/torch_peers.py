"""Optional PyTorch peers of `diffinf bench influence` on the same weights.

Each runner computes per-sample squared gradient norms over all parameters of
a PyTorch mirror of the bench's Flax model (the ResNet-18 + head of
`torch_resnet`, BatchNorm on running statistics; the ViT and the language
model of `models/torch_mirrors`) for the bench's batch and summed loss
(cross-entropy; summed over positions for the language model), and returns a
no-argument callable giving [n] norms (float64) for its first n samples:

  torch_func       torch.func.vmap(grad) in chunks (materialised gradients)
  opacus           Opacus GradSampleModule: hooks store every parameter's
                   per-sample gradient (`grad_sample`)
  opacus_ghost     Opacus GradSampleModuleFastGradientClipping with ghost
                   clipping: per-sample norms without per-sample gradients
                   where Opacus has a norm sampler (Linear, Embedding),
                   materialised elsewhere
  captum_tracincp  Captum TracInCP(...).self_influence with its default
                   settings (one backward per example), one checkpoint of
                   learning rate 1, on `CAPTUM_SAMPLES` samples (it is slow)

A peer runs only when its package imports and the model has a mirror; none is
ever required. torch is imported inside the functions: the bench must run
without it.
"""

from __future__ import annotations

import dataclasses
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


@dataclasses.dataclass(frozen=True)
class Family:
  """How to run one Flax model family in PyTorch.

  Attributes:
    build: (model, variables) -> torch.nn.Module with the same weights.
    input_key: the bench batch's model input.
    sequence: the loss is summed over positions (logits [B, T, V]).
  """
  build: Callable
  input_key: str = "image"
  sequence: bool = False


def family(model) -> Family | None:
  """The mirror of this Flax model, or None (no PyTorch peer)."""
  from diffinf_jax.bench.models import torch_mirrors
  from diffinf_jax.bench.models import transformer_lm
  from diffinf_jax.bench.models import vit
  from diffinf_jax.models import resnet
  if type(model) is resnet.ResNet18:
    return Family(lambda m, v: torch_resnet.build_module(v))
  if type(model) is vit.ViT:
    return Family(torch_mirrors.build_vit)
  if type(model) is transformer_lm.TransformerLM:
    return Family(torch_mirrors.build_lm, input_key="tokens", sequence=True)
  return None


def supports(model) -> bool:
  """Whether a torch mirror implements this Flax model."""
  return family(model) is not None


def _inputs(fam: Family, batch, n=None):
  import torch
  x, labels = np.asarray(batch[fam.input_key]), np.asarray(batch["label"])
  n = len(labels) if n is None else min(n, len(labels))
  if fam.sequence:
    x = torch.from_numpy(np.asarray(x[:n], np.int64))
  else:
    x = torch_resnet.nchw(x[:n])
  return x, torch.from_numpy(np.asarray(labels[:n], np.int64))


def _loss(fam: Family, outputs, labels, reduction: str):
  """Cross-entropy per example ("none": [n]) or summed over the batch."""
  import torch.nn.functional as F
  if not fam.sequence:
    return F.cross_entropy(outputs, labels, reduction=reduction)
  per_token = F.cross_entropy(outputs.transpose(1, 2), labels,
                              reduction="none")
  per_example = per_token.sum(1)
  return per_example if reduction == "none" else per_example.sum()


class _PerExampleLoss:
  """Captum's loss_fn: one loss per example, and says so (`reduction`)."""
  reduction = "none"

  def __init__(self, fam: Family):
    self.fam = fam

  def __call__(self, outputs, labels):
    return _loss(self.fam, outputs, labels, "none")


def torch_func_runner(model, variables, batch, chunk: int = 16) -> Callable:
  """torch.func.vmap(grad) norms, `chunk` samples materialised at once."""
  import torch
  from torch.func import functional_call, grad, vmap
  fam = family(model)
  module = fam.build(model, variables)
  params = {k: v.detach() for k, v in module.named_parameters()}
  x, y = _inputs(fam, batch)

  def loss_one(p, xi, yi):
    return _loss(fam, functional_call(module, p, (xi[None],)), yi[None],
                 "sum")

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
    # The first layer's input needs no gradient, which Opacus's full backward
    # hooks report on every call; the norms are unaffected.
    warnings.filterwarnings("ignore", message="Full backward hook is firing")
    loss.backward()


def opacus_runner(model, variables, batch) -> Callable:
  """Opacus per-sample gradients (grad_sample), then their squared norms."""
  from opacus.grad_sample import GradSampleModule
  fam = family(model)
  gsm = GradSampleModule(fam.build(model, variables), batch_first=True,
                         loss_reduction="sum", strict=False)
  x, y = _inputs(fam, batch)

  def run():
    gsm.zero_grad(set_to_none=True)
    _backward(_loss(fam, gsm(x), y, "sum"))
    sq = sum(p.grad_sample.reshape(len(y), -1).double().pow(2).sum(1)
             for p in gsm.parameters())
    return sq.detach().numpy()
  return run


def opacus_ghost_runner(model, variables, batch) -> Callable:
  """Opacus ghost clipping's per-sample norms (first backward only)."""
  from opacus.grad_sample import GradSampleModuleFastGradientClipping
  fam = family(model)
  gsm = GradSampleModuleFastGradientClipping(
      fam.build(model, variables), batch_first=True, loss_reduction="sum",
      strict=False, use_ghost_clipping=True)
  x, y = _inputs(fam, batch)

  def run():
    gsm.zero_grad(set_to_none=True)
    _backward(_loss(fam, gsm(x), y, "sum"))
    return gsm.get_norm_sample().detach().double().pow(2).numpy()
  return run


def captum_runner(model, variables, batch, samples: int = CAPTUM_SAMPLES
                  ) -> Callable:
  """Captum TracInCP self-influence (lr 1, one checkpoint) = squared norms."""
  import torch
  from captum.influence import TracInCP
  fam = family(model)
  module = fam.build(model, variables)
  x, y = _inputs(fam, batch, samples)
  path = os.path.join(tempfile.mkdtemp(prefix="diffinf_captum_"), "ckpt.pt")
  torch.save(module.state_dict(), path)

  def load(model, ckpt):
    model.load_state_dict(torch.load(ckpt, weights_only=True))
    return 1.0  # the checkpoint's learning rate
  tracin = TracInCP(module, torch.utils.data.TensorDataset(x, y), [path],
                    checkpoints_load_func=load,
                    loss_fn=_PerExampleLoss(fam),
                    batch_size=len(y))
  return lambda: tracin.self_influence((x, y)).double().numpy()


def runner(peer: str, model, variables, batch, vmap_chunk: int) -> Callable:
  """The no-argument callable of `peer` (one of PEERS)."""
  if peer == "torch_func":
    return torch_func_runner(model, variables, batch, vmap_chunk)
  return {"opacus": opacus_runner, "opacus_ghost": opacus_ghost_runner,
          "captum_tracincp": captum_runner}[peer](model, variables, batch)
