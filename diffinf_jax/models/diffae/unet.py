"""The z_sem-conditioned noise predictor eps(x_t, t, z_sem[, c]) (BeatGANs UNet).

x_t: [B, H, W, C] NHWC; t: [B] ORIGINAL timesteps (0..999, never the respaced
index); z_sem: [B, D]; label c: [B] int in 0..K (K = num_classes is the null
class), only when `num_classes > 0`. Sub-module names equal upstream's
state_dict names (`input_blocks.K.J`, `middle_block.J`, `output_blocks.K.J`,
`out.J`); the layout (levels, res blocks, attention resolutions) follows the
config only.

Label conditioning (paper eq. 6-8, c = the assigned label): a learned
embedding `label_emb` [K + 1, embed_channels] is added to the time embedding
(ADM's place for it), so every ResBlock sees it through its scale/shift. It
is initialised to ZERO: a freshly extended unconditional checkpoint then
gives exactly the unconditional eps for every label (see
`autoencoder.extend_variables`).
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from diffinf_jax.models.diffae import blocks
from diffinf_jax.models.diffae.presets import DiffAEConfig


class UNet(nn.Module):
  """The conditional noise predictor eps(x_t, t, z_sem)."""
  config: DiffAEConfig

  @nn.compact
  def __call__(self, x, t, cond, label=None, *, train: bool = False):
    c = self.config
    mc = c.model_channels
    emb = blocks.timestep_embedding(t, mc)
    emb = nn.Dense(c.embed_channels, name="time_embed.time_embed.0")(emb)
    emb = nn.Dense(c.embed_channels, name="time_embed.time_embed.2")(
        nn.silu(emb))
    if c.num_classes:
      if label is None:
        raise ValueError(
            f"DiffAE: this model is class-conditional (num_classes="
            f"{c.num_classes}); pass label [B] in 0..{c.num_classes} "
            f"({c.num_classes} = null class)")
      emb = emb + nn.Embed(c.num_classes + 1, c.embed_channels,
                           embedding_init=nn.initializers.zeros,
                           name="label_emb")(label)
    elif label is not None:
      raise ValueError(
          "DiffAE: a label was given but this model is unconditional "
          "(num_classes=0); load it with `load_diffae(dir, num_classes=K)` "
          "to extend it with a zero class embedding, or pass no label")

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
