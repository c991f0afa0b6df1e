"""Transformer pieces shared by the bench's ViT and language model."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

# Flax's LayerNorm default; the PyTorch mirrors use the same value.
LN_EPS = 1e-6


class AddPositionEmbedding(nn.Module):
  """x + a learned [1, T, D] embedding (its own module: see ClassToken)."""

  @nn.compact
  def __call__(self, x):
    pe = self.param("pos_embedding", nn.initializers.normal(0.02),
                    (1,) + x.shape[1:], x.dtype)
    return x + pe


class ClassToken(nn.Module):
  """Prepends a learned token to [B, T, D] -> [B, T + 1, D].

  A module of its own, as big_vision / vit_jax-style code often does not:
  parameters owned directly by a module with children get the influence
  engine's generic fallback, which re-runs that whole module per example.
  """

  @nn.compact
  def __call__(self, x):
    cls = self.param("cls", nn.initializers.zeros, (1, 1, x.shape[-1]),
                     x.dtype)
    return jnp.concatenate(
        [jnp.broadcast_to(cls, (x.shape[0], 1, x.shape[-1])), x], axis=1)


class EncoderBlock(nn.Module):
  """Pre-LayerNorm transformer block: self-attention, then a GELU MLP.

  Attributes:
    num_heads: attention heads (width must divide by it).
    mlp_dim: hidden width of the MLP.
    causal: mask attention to earlier positions (language model).
  """
  num_heads: int
  mlp_dim: int
  causal: bool = False

  @nn.compact
  def __call__(self, x):
    """x: [B, T, D] -> [B, T, D]."""
    mask = None
    if self.causal:
      mask = nn.make_causal_mask(jnp.ones(x.shape[:2], jnp.int32))
    y = nn.LayerNorm(epsilon=LN_EPS, name="ln_attn")(x)
    y = nn.MultiHeadDotProductAttention(
        num_heads=self.num_heads, name="attn")(y, y, mask=mask)
    x = x + y
    y = nn.LayerNorm(epsilon=LN_EPS, name="ln_mlp")(x)
    y = nn.Dense(self.mlp_dim, name="mlp_in")(y)
    y = nn.Dense(x.shape[-1], name="mlp_out")(nn.gelu(y))
    return x + y
