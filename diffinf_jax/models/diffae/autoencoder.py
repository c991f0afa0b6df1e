"""The DiffAE autoencoder: semantic encoder + z_sem-conditioned UNet.

  model = DiffAE(config)
  z_sem = model.apply(variables, x0, method=DiffAE.encode)  # [B, D]
  eps = model.apply(variables, x_t, t, z_sem)             # [B, H, W, 3]
  eps = model.apply(variables, x_t, t, z_sem, label)      # num_classes > 0

Parameters live under `params/unet/...` and `params/encoder/...` with
upstream's module names below (see convert/diffae.py); a class-conditional
model adds `params/unet/label_emb/embedding` [K + 1, embed_channels].
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import numpy as np

from diffinf_jax.models.diffae.encoder import Encoder
from diffinf_jax.models.diffae.presets import DiffAEConfig
from diffinf_jax.models.diffae.unet import UNet

LABEL_EMB = "label_emb"


class DiffAE(nn.Module):
  """Encoder + UNet; `__call__` predicts eps, `encode` gives z_sem."""
  config: DiffAEConfig

  def setup(self):
    self.encoder = Encoder(self.config)
    self.unet = UNet(self.config)

  def encode(self, x0):
    return self.encoder(x0)

  def __call__(self, x_t, t, z_sem, label=None, *, train: bool = False):
    return self.unet(x_t, t, z_sem, label, train=train)

  def init_all(self, x0, t):
    """Initialises both parts (use as `method=` in `init`)."""
    label = None
    if self.config.num_classes:
      label = np.full(x0.shape[:1], self.config.num_classes, np.int32)
    return self(x0, t, self.encode(x0), label)


def is_conditional(variables) -> bool:
  """Whether a variables tree holds a class embedding."""
  return LABEL_EMB in variables.get("params", {}).get("unet", {})


def extend_variables(variables, config: DiffAEConfig, num_classes: int
                     ) -> tuple[dict, DiffAEConfig]:
  """Unconditional DiffAE variables -> a K-class conditional model's.

  Adds `params/unet/label_emb/embedding` = zeros [K + 1, embed_channels]
  (K real classes + the null class). Every other array is shared unchanged,
  so the extended model's eps, encode and decode equal the unconditional
  model's EXACTLY for every label until it is fine-tuned (the zero
  embedding adds 0.0 to the time embedding).

  Args:
    variables: {'params': {'encoder': ..., 'unet': ...}} of an
      unconditional model (e.g. converted by `diffinf convert diffae`).
    config: its config (num_classes == 0).
    num_classes: K >= 1.

  Returns:
    (variables, config with num_classes = K); the input tree is not
    modified.

  Raises:
    ValueError: K < 1, or the variables / config are already conditional.
  """
  if int(num_classes) < 1:
    raise ValueError(f"diffae.num_classes={num_classes}: extending a DiffAE "
                     "to a conditional model needs at least 1 class")
  if config.num_classes or is_conditional(variables):
    raise ValueError(
        f"DiffAE weights are already class-conditional (num_classes="
        f"{config.num_classes}); load them without extending")
  unet = dict(variables["params"]["unet"])
  dtype = np.asarray(unet["time_embed.time_embed.2"]["bias"]).dtype
  unet[LABEL_EMB] = {"embedding": np.zeros(
      (int(num_classes) + 1, config.embed_channels), dtype)}
  params = {**variables["params"], "unet": unet}
  return ({**variables, "params": params},
          dataclasses.replace(config, num_classes=int(num_classes)))
