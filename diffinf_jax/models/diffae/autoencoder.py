"""The DiffAE autoencoder: semantic encoder + z_sem-conditioned UNet.

  model = DiffAE(config)
  z_sem = model.apply(variables, x0, method=DiffAE.encode)  # [B, D]
  eps = model.apply(variables, x_t, t, z_sem)             # [B, H, W, 3]

Parameters live under `params/unet/...` and `params/encoder/...` with
upstream's module names below (see convert/diffae.py).
"""

from __future__ import annotations

import flax.linen as nn

from diffinf_jax.models.diffae.encoder import Encoder
from diffinf_jax.models.diffae.presets import DiffAEConfig
from diffinf_jax.models.diffae.unet import UNet


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
