"""DiffAE architecture config (`DiffAEConfig`) and named presets.

Field names follow upstream's BeatGANsAutoencConfig so that a checkpoint's
hyper-parameters translate one to one (`from_upstream`). `num_classes` is
ours (upstream has no class conditioning): 0 is upstream's model exactly;
K > 0 adds a class embedding of K + 1 rows (row K is the "null" class of
classifier-free guidance) to the time embedding, as ADM does.
"""

from __future__ import annotations

import dataclasses

from diffinf_jax.models import arch_config


@dataclasses.dataclass(frozen=True)
class DiffAEConfig:
  image_size: int = 128
  in_channels: int = 3
  out_channels: int = 3
  model_channels: int = 128
  channel_mult: tuple = (1, 1, 2, 3, 4)
  num_res_blocks: int = 2
  attention_resolutions: tuple = (16,)
  embed_channels: int = 512          # time-embedding width
  num_heads: int = 1
  dropout: float = 0.1               # UNet ResBlocks, training only
  enc_channel_mult: tuple = (1, 1, 2, 3, 4, 4)
  enc_num_res_blocks: int = 2
  enc_attn_resolutions: tuple | None = None   # None: attention_resolutions
  enc_out_channels: int = 512        # z_sem dimension
  num_classes: int = 0               # 0: unconditional; K: labels 0..K-1 + null K

  @property
  def null_label(self) -> int:
    """The index of the null class (== num_classes); only if conditional."""
    if not self.num_classes:
      raise ValueError("DiffAE: this model is unconditional (num_classes=0) "
                       "and has no null class")
    return self.num_classes

  def to_dict(self) -> dict:
    return arch_config.to_dict(self)

  @classmethod
  def from_dict(cls, d: dict) -> "DiffAEConfig":
    return arch_config.from_dict(cls, d)

  @classmethod
  def from_upstream(cls, model_conf: dict) -> "DiffAEConfig":
    """From upstream's `BeatGANsAutoencConfig` fields (checkpoint hparams)."""
    m = model_conf
    if m.get("num_input_res_blocks") not in (None, m["num_res_blocks"]):
      raise ValueError("num_input_res_blocks != num_res_blocks is not "
                       "supported")
    if m.get("use_new_attention_order"):
      raise ValueError("use_new_attention_order=True is not supported")
    if not m.get("resblock_updown", True):
      raise ValueError("resblock_updown=False is not supported")
    if not m.get("resnet_two_cond", True):
      raise ValueError("resnet_two_cond=False is not supported")
    if m.get("num_head_channels", -1) not in (-1, None):
      raise ValueError("num_head_channels is not supported (use num_heads)")
    enc_attn = m.get("enc_attn_resolutions")
    return cls(
        image_size=m["image_size"], in_channels=m["in_channels"],
        out_channels=m["out_channels"], model_channels=m["model_channels"],
        channel_mult=tuple(m["channel_mult"]),
        num_res_blocks=m["num_res_blocks"],
        attention_resolutions=tuple(m["attention_resolutions"]),
        embed_channels=m["embed_channels"], num_heads=m["num_heads"],
        dropout=m["dropout"], enc_channel_mult=tuple(m["enc_channel_mult"]),
        enc_num_res_blocks=m["enc_num_res_block"],
        enc_attn_resolutions=None if enc_attn is None else tuple(enc_attn),
        enc_out_channels=m["enc_out_channels"])


PRESETS = {
    # The official FFHQ-128 autoencoder (ffhq128_autoenc_130M).
    "ffhq128": DiffAEConfig(),
    # The demo's own model on 32 px demo faces (the shipped weights in
    # assets/weights/demo32/diffae were trained with exactly this preset by
    # scripts/make_demo_weights.sh). 16 channels at every level would double
    # the gradient throughput through the decode but needs retraining.
    "demo32": DiffAEConfig(
        image_size=32, model_channels=16, channel_mult=(2, 2, 2),
        num_res_blocks=1, attention_resolutions=(8,), embed_channels=64,
        enc_channel_mult=(1, 2, 2, 4), enc_num_res_blocks=1,
        enc_out_channels=64, dropout=0.0),
    # The demo's label-conditioned generators (assets/weights/demo32/
    # diffae_age, diffae_expression; scripts/make_demo_weights.sh): 16
    # channels at every level, ~4x the UNet throughput of demo32 (measured
    # 237 vs 61 eps evaluations / s at batch 72 on the 2-core CPU), which is
    # what gradients through a guided decode in the correction stage pay.
    "demo32c16": DiffAEConfig(
        image_size=32, model_channels=16, channel_mult=(1, 1, 1),
        num_res_blocks=1, attention_resolutions=(8,), embed_channels=64,
        enc_channel_mult=(1, 2, 2, 4), enc_num_res_blocks=1,
        enc_out_channels=64, dropout=0.0),
    # Tests: 16 px, width 8.
    "tiny": DiffAEConfig(
        image_size=16, model_channels=8, channel_mult=(1, 2),
        num_res_blocks=1, attention_resolutions=(8,), embed_channels=16,
        enc_channel_mult=(1, 2), enc_num_res_blocks=1, enc_out_channels=16,
        dropout=0.0),
}


def get_preset(name: str) -> DiffAEConfig:
  if name not in PRESETS:
    raise ValueError(f"config diffae.preset={name!r}: use one of "
                     f"{sorted(PRESETS)}")
  return PRESETS[name]
