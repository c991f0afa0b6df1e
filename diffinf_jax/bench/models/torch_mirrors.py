"""PyTorch mirrors of the bench's ViT and language model (same weights).

`build_module(model, variables)` returns a torch.nn.Module computing the Flax
model's logits from the same inputs (images NCHW, tokens [B, T] int64):
Flax Dense kernels [D_in, D_out] -> Linear weights [D_out, D_in]; the
attention's DenseGeneral kernels [D, heads, head_dim] / [heads, head_dim, D]
-> one Linear each; conv kernels [kh, kw, C_in, C_out] -> [C_out, C_in, kh,
kw]; LayerNorm epsilon and the tanh GELU as in Flax. Attention is written
with Linear layers and matmuls (not torch.nn.MultiheadAttention), which every
per-sample library supports; the class token and position embeddings are
small modules owning one parameter each (Opacus computes their per-sample
gradients with its functorch fallback).

torch is imported inside the functions: the package must import without it.
"""

from __future__ import annotations

import math

import numpy as np

from diffinf_jax.bench.models import layers
from diffinf_jax.bench.models import transformer_lm
from diffinf_jax.bench.models import vit


def _tensor(a, transpose=None):
  import torch
  a = np.asarray(a, np.float32)
  if transpose is not None:
    a = a.transpose(transpose)
  return torch.from_numpy(np.array(a, order="C"))


def _modules():
  """The torch building blocks (defined lazily: torch is optional)."""
  import torch
  from torch import nn
  import torch.nn.functional as F

  def linear(p, flat_in: int | None = None):
    k = np.asarray(p["kernel"])
    d_in = k.shape[0] if flat_in is None else flat_in
    k = k.reshape(d_in, -1)
    m = nn.Linear(k.shape[0], k.shape[1], bias="bias" in p)
    m.weight = nn.Parameter(_tensor(k, (1, 0)))
    if "bias" in p:
      m.bias = nn.Parameter(_tensor(np.asarray(p["bias"]).reshape(-1)))
    return m

  def layer_norm(p):
    m = nn.LayerNorm(p["scale"].shape[-1], eps=layers.LN_EPS)
    m.weight = nn.Parameter(_tensor(p["scale"]))
    m.bias = nn.Parameter(_tensor(p["bias"]))
    return m

  class Param(nn.Module):
    """Adds (or prepends, as a class token) one learned tensor."""

    def __init__(self, value, prepend: bool):
      super().__init__()
      self.value = nn.Parameter(_tensor(value))
      self.prepend = prepend

    def forward(self, x):
      if self.prepend:
        return torch.cat([self.value.expand(x.shape[0], -1, -1), x], dim=1)
      return x + self.value

  class Attention(nn.Module):
    def __init__(self, p, num_heads: int, causal: bool):
      super().__init__()
      d = p["query"]["kernel"].shape[0]
      self.heads, self.causal = num_heads, causal
      self.q, self.k, self.v = (linear(p[n]) for n in ("query", "key",
                                                       "value"))
      self.out = linear(p["out"], flat_in=d)

    def forward(self, x):
      b, t, d = x.shape
      split = lambda y: y.view(b, t, self.heads, -1).transpose(1, 2)
      q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
      scores = (q / math.sqrt(q.shape[-1])) @ k.transpose(-1, -2)
      if self.causal:
        keep = torch.ones(t, t, dtype=torch.bool).tril()
        scores = scores.masked_fill(~keep, torch.finfo(scores.dtype).min)
      y = torch.softmax(scores, dim=-1) @ v
      return self.out(y.transpose(1, 2).reshape(b, t, d))

  class Block(nn.Module):
    def __init__(self, p, num_heads: int, causal: bool):
      super().__init__()
      self.ln_attn, self.ln_mlp = layer_norm(p["ln_attn"]), layer_norm(
          p["ln_mlp"])
      self.attn = Attention(p["attn"], num_heads, causal)
      self.mlp_in, self.mlp_out = linear(p["mlp_in"]), linear(p["mlp_out"])

    def forward(self, x):
      x = x + self.attn(self.ln_attn(x))
      y = F.gelu(self.mlp_in(self.ln_mlp(x)), approximate="tanh")
      return x + self.mlp_out(y)

  return dict(linear=linear, layer_norm=layer_norm, Param=Param, Block=Block)


def build_vit(model: vit.ViT, variables):
  """torch.nn.Module: images [B, 3, H, W] -> [B, num_classes] logits."""
  from torch import nn
  m = _modules()
  p = variables["params"]

  class ViT(nn.Module):
    def __init__(self):
      super().__init__()
      k = np.asarray(p["patch_embed"]["kernel"])
      self.patch = nn.Conv2d(k.shape[2], k.shape[3], k.shape[0],
                             stride=k.shape[0])
      self.patch.weight = nn.Parameter(_tensor(k, (3, 2, 0, 1)))
      self.patch.bias = nn.Parameter(_tensor(p["patch_embed"]["bias"]))
      self.cls = m["Param"](p["cls_token"]["cls"], prepend=True)
      self.pos = m["Param"](p["pos_embed"]["pos_embedding"], prepend=False)
      self.blocks = nn.Sequential(*[
          m["Block"](p[f"block{i}"], model.num_heads, causal=False)
          for i in range(model.depth)])
      self.ln = m["layer_norm"](p["ln_final"])
      self.head = m["linear"](p["head"])

    def forward(self, x):
      x = self.patch(x).flatten(2).transpose(1, 2)
      x = self.blocks(self.pos(self.cls(x)))
      return self.head(self.ln(x[:, 0]))
  return ViT()


def build_lm(model: transformer_lm.TransformerLM, variables):
  """torch.nn.Module: tokens [B, T] int64 -> [B, T, vocab] logits."""
  from torch import nn
  m = _modules()
  p = variables["params"]

  class LM(nn.Module):
    def __init__(self):
      super().__init__()
      table = np.asarray(p["token_embed"]["embedding"])
      self.embed = nn.Embedding(*table.shape)
      self.embed.weight = nn.Parameter(_tensor(table))
      self.pos = m["Param"](p["pos_embed"]["pos_embedding"], prepend=False)
      self.blocks = nn.Sequential(*[
          m["Block"](p[f"block{i}"], model.num_heads, causal=True)
          for i in range(model.depth)])
      self.ln = m["layer_norm"](p["ln_final"])
      self.head = m["linear"](p["lm_head"])

    def forward(self, tokens):
      x = self.blocks(self.pos(self.embed(tokens)))
      return self.head(self.ln(x))
  return LM()
