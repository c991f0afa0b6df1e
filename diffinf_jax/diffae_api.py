"""High-level DiffAE: load weights, encode x0 -> (z_sem, x_T), decode back.

  ae = load_diffae("weights/diffae_ffhq128")      # or package:weights/...
  z_sem, x_T = ae.encode(x0, T=250)                # x0 [B, H, W, 3] in [-1, 1]
  x0_hat = ae.decode(z_sem, x_T, T=20, remat=True) # differentiable

All methods are pure functions of their array arguments (weights are closed
over), so they can be jitted, differentiated and sharded over the batch.
"""

from __future__ import annotations

import numpy as np

from diffinf_jax.diffusion import ddim
from diffinf_jax.models import diffae as diffae_models


class DiffAEModel:
  """A DiffAE with frozen weights (float32)."""

  def __init__(self, config: diffae_models.DiffAEConfig, variables,
               num_timesteps: int = 1000):
    self.config = config
    self.model = diffae_models.DiffAE(config)
    self.variables = variables
    self.num_timesteps = num_timesteps

  def check_images(self, x) -> None:
    """Shape check (static, works under jit)."""
    c = self.config
    want = (c.image_size, c.image_size, c.in_channels)
    if x.ndim != 4 or tuple(x.shape[1:]) != want:
      raise ValueError(f"DiffAE images must be [B, {want[0]}, {want[1]}, "
                       f"{want[2]}] in [-1, 1]; got shape {tuple(x.shape)}")

  def eps(self, x_t, t, z_sem):
    return self.model.apply(self.variables, x_t, t, z_sem)

  def encode_semantic(self, x0):
    self.check_images(x0)
    return self.model.apply(self.variables, x0,
                            method=diffae_models.DiffAE.encode)

  def encode(self, x0, T: int):
    """(z_sem [B, D], x_T [B, H, W, C]) by deterministic DDIM inversion."""
    z = self.encode_semantic(x0)
    x_T = ddim.invert(lambda x, t: self.eps(x, t, z), x0, int(T),
                      num_timesteps=self.num_timesteps)
    return z, x_T

  def check_latents(self, z_sem, x_T) -> None:
    """Shape checks of (z_sem [B, D], x_T [B, H, W, C]) (static)."""
    self.check_images(x_T)
    d = self.config.enc_out_channels
    if z_sem.ndim != 2 or z_sem.shape != (x_T.shape[0], d):
      raise ValueError(f"DiffAE z_sem must be [B, {d}] with B = {x_T.shape[0]}"
                       f" (from x_T); got shape {tuple(z_sem.shape)}")

  def decode(self, z_sem, x_T, T: int, remat: bool = False):
    """x0 [B, H, W, C] in [-1, 1] by deterministic DDIM (eta = 0).

    Differentiable in z_sem and x_T; `remat=True` recomputes each step's
    activations in the backward pass (memory independent of T).
    """
    self.check_latents(z_sem, x_T)
    return ddim.decode(lambda x, t: self.eps(x, t, z_sem), x_T, int(T),
                       num_timesteps=self.num_timesteps, remat=remat)


def load_diffae(weights_dir: str) -> DiffAEModel:
  """Loads converted (`diffinf convert diffae`) or trained weights."""
  from diffinf_jax.convert import common
  if not weights_dir:
    raise FileNotFoundError(
        "config diffae.weights_dir is empty: convert the official checkpoint "
        "with `diffinf convert diffae last.ckpt DIR` (or train one with "
        "`diffinf train-diffae`) and set --config.diffae.weights_dir=DIR")
  variables, cfg, _ = common.load_converted(weights_dir, what="DiffAE weights")
  config = diffae_models.DiffAEConfig.from_dict(cfg)
  return DiffAEModel(config, variables)


def check_range(x: np.ndarray, what: str) -> None:
  x = np.asarray(x)
  if not np.all(np.isfinite(x)):
    raise ValueError(f"{what}: contains NaN/inf")
  lo, hi = float(x.min()), float(x.max())
  if lo < -1.0 - 1e-6 or hi > 1.0 + 1e-6:
    raise ValueError(f"{what}: values in [{lo:.3f}, {hi:.3f}]; images must "
                     "be in [-1, 1] (x / 127.5 - 1 for uint8)")
