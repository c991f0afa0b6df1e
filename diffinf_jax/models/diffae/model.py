"""The DiffAE autoencoder: semantic encoder + z_sem-conditioned UNet.

  model = DiffAE(config)
  z_sem = model.apply(variables, x0, method=DiffAE.encode)        # [B, D]
  eps = model.apply(variables, x_t, t, z_sem)                      # [B, H, W, 3]

x0, x_t: [B, H, W, C] in NHWC; t: [B] ORIGINAL timesteps (0..999, never the
respaced index). Parameter paths mirror upstream's state_dict names with the
UNet under `unet/` and the encoder under `encoder/`.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from diffinf_jax.models.diffae import blocks
from diffinf_jax.models.diffae.config import DiffAEConfig


class UNet(nn.Module):
  """The conditional noise predictor eps(x_t, t, z_sem)."""
  config: DiffAEConfig

  @nn.compact
  def __call__(self, x, t, cond, *, train: bool = False):
    c = self.config
    mc = c.model_channels
    emb = blocks.timestep_embedding(t, mc)
    emb = nn.Dense(c.embed_channels, name="time_embed.time_embed.0")(emb)
    emb = nn.Dense(c.embed_channels, name="time_embed.time_embed.2")(
        nn.silu(emb))

    def res(h, ch, name, **kw):
      return blocks.ResBlock(ch, dropout=c.dropout, name=name, **kw)(
          h, emb, cond, train=train)

    ch = c.channel_mult[0] * mc
    h = blocks.conv3(ch, "input_blocks.0.0")(x)
    skips, k, res_px = [h], 1, c.image_size
    for level, mult in enumerate(c.channel_mult):
      for _ in range(c.num_res_blocks):
        ch = mult * mc
        h = res(h, ch, f"input_blocks.{k}.0")
        if res_px in c.attention_resolutions:
          h = blocks.AttentionBlock(c.num_heads, name=f"input_blocks.{k}.1")(h)
        skips.append(h)
        k += 1
      if level != len(c.channel_mult) - 1:
        h = res(h, ch, f"input_blocks.{k}.0", down=True)
        skips.append(h)
        k += 1
        res_px //= 2
    h = res(h, ch, "middle_block.0")
    h = blocks.AttentionBlock(c.num_heads, name="middle_block.1")(h)
    h = res(h, ch, "middle_block.2")
    k = 0
    for level, mult in reversed(list(enumerate(c.channel_mult))):
      for i in range(c.num_res_blocks + 1):
        ch = mult * mc
        h = res(jnp.concatenate([h, skips.pop()], axis=-1), ch,
                f"output_blocks.{k}.0")
        sub = 1
        if res_px in c.attention_resolutions:
          h = blocks.AttentionBlock(c.num_heads,
                                    name=f"output_blocks.{k}.1")(h)
          sub = 2
        if level and i == c.num_res_blocks:
          h = res(h, ch, f"output_blocks.{k}.{sub}", up=True)
          res_px *= 2
        k += 1
    h = nn.silu(blocks.group_norm(ch, "out.0")(h))
    return blocks.conv3(c.out_channels, "out.2")(h)


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


class DiffAE(nn.Module):
  """Encoder + UNet; `__call__` predicts eps, `encode` gives z_sem."""
  config: DiffAEConfig

  def setup(self):
    self.encoder = Encoder(self.config)
    self.unet = UNet(self.config)

  def encode(self, x0):
    return self.encoder(x0)

  def __call__(self, x_t, t, z_sem, *, train: bool = False):
    return self.unet(x_t, t, z_sem, train=train)

  def init_all(self, x0, t):
    """Initialises both parts (use as `method=` in `init`)."""
    return self(x0, t, self.encode(x0))
