"""The semantic encoder Enc(x0) -> z_sem (upstream BeatGANsEncoderModel).

x0: [B, H, W, C] in [-1, 1]; returns z_sem [B, enc_out_channels]. Its
ResBlocks are unconditioned (one norm + one conv, no emb/cond/out layers).
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from diffinf_jax.models.diffae import blocks
from diffinf_jax.models.diffae.presets import DiffAEConfig


class Encoder(nn.Module):
  """The semantic encoder Enc(x0) -> z_sem (unconditioned ResBlocks)."""
  config: DiffAEConfig

  @nn.compact
  def __call__(self, x):
    c = self.config
    mc = c.model_channels
    attn = (c.attention_resolutions if c.enc_attn_resolutions is None
            else c.enc_attn_resolutions)

    def res(h, ch, name, **kw):
      return blocks.ResBlock(ch, conditioned=False, name=name, **kw)(h)

    ch = c.enc_channel_mult[0] * mc
    h = blocks.conv3(ch, "input_blocks.0.0")(x)
    k, res_px = 1, c.image_size
    for level, mult in enumerate(c.enc_channel_mult):
      for _ in range(c.enc_num_res_blocks):
        ch = mult * mc
        h = res(h, ch, f"input_blocks.{k}.0")
        if res_px in attn:
          h = blocks.AttentionBlock(c.num_heads, name=f"input_blocks.{k}.1")(h)
        k += 1
      if level != len(c.enc_channel_mult) - 1:
        h = res(h, ch, f"input_blocks.{k}.0", down=True)
        k += 1
        res_px //= 2
    h = res(h, ch, "middle_block.0")
    h = blocks.AttentionBlock(c.num_heads, name="middle_block.1")(h)
    h = res(h, ch, "middle_block.2")
    h = nn.silu(blocks.group_norm(ch, "out.0")(h))
    h = jnp.mean(h, axis=(1, 2))
    return nn.Dense(c.enc_out_channels, name="out.3")(h)
