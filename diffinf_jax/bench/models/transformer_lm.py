"""A decoder-only text transformer (GPT-style, pre-LayerNorm, untied head).

  logits = TransformerLM(vocab_size=8192)(tokens)     # tokens [B, T] int

Token embedding (nn.Embed) plus learned position embeddings, `depth` causal
encoder blocks (nn.MultiHeadDotProductAttention + GELU MLP), a final
LayerNorm and a Dense head over the vocabulary: [B, T, vocab] logits. Scored
with `per_example.sequence_xent` on the next tokens (`label` [B, T]). The
head is not tied to the embedding: a module called twice (weight tying) has
no per-example rule (see docs/influence_api.md).
"""

from __future__ import annotations

import flax.linen as nn

from diffinf_jax.bench.models import layers


class TransformerLM(nn.Module):
  """Attributes: 6 layers, width 256, 4 heads, MLP 1024 by default."""
  vocab_size: int
  width: int = 256
  depth: int = 6
  num_heads: int = 4
  mlp_dim: int = 1024

  @nn.compact
  def __call__(self, tokens, *, train: bool = False):
    """tokens: [B, T] int -> [B, T, vocab_size] logits."""
    del train  # No dropout.
    x = nn.Embed(self.vocab_size, self.width, name="token_embed")(tokens)
    x = layers.AddPositionEmbedding(name="pos_embed")(x)
    for i in range(self.depth):
      x = layers.EncoderBlock(self.num_heads, self.mlp_dim, causal=True,
                              name=f"block{i}")(x)
    x = nn.LayerNorm(epsilon=layers.LN_EPS, name="ln_final")(x)
    return nn.Dense(self.vocab_size, name="lm_head")(x)
