"""Vision Transformer (Dosovitskiy et al. 2021), ViT-S/16 by default.

  logits = ViT(num_classes=3)(x)      # x [B, H, W, 3]

Patch embedding by a stride-16 convolution, a class token, learned position
embeddings, pre-LayerNorm encoder blocks, the class token's final LayerNorm
feature into a Dense head. No dropout: `train` is accepted (and ignored) so
the model has the usual call signature.
"""

from __future__ import annotations

import flax.linen as nn

from diffinf_jax.bench.models import layers


class ViT(nn.Module):
  """Attributes: ViT-S/16 = patch 16, width 384, depth 12, 6 heads, MLP 1536."""
  num_classes: int
  patch_size: int = 16
  width: int = 384
  depth: int = 12
  num_heads: int = 6
  mlp_dim: int = 1536

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    """x: [B, H, W, C] images -> [B, num_classes] logits."""
    del train  # No dropout or batch statistics.
    p = self.patch_size
    x = nn.Conv(self.width, (p, p), strides=(p, p), padding="VALID",
                name="patch_embed")(x)
    b, h, w, c = x.shape
    x = x.reshape(b, h * w, c)
    x = layers.ClassToken(name="cls_token")(x)
    x = layers.AddPositionEmbedding(name="pos_embed")(x)
    for i in range(self.depth):
      x = layers.EncoderBlock(self.num_heads, self.mlp_dim,
                              name=f"block{i}")(x)
    x = nn.LayerNorm(epsilon=layers.LN_EPS, name="ln_final")(x[:, 0])
    return nn.Dense(self.num_classes, name="head")(x)


def vit_s16(num_classes: int) -> ViT:
  return ViT(num_classes=num_classes)
