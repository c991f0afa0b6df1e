"""DiffAE (Preechakul et al. 2022) in Flax: semantic encoder + conditional UNet.

  cfg = get_preset("ffhq128")   # or DiffAEConfig(...) or a config dict
  model = create_model(cfg)
  variables = init_variables(model, jax.random.key(0))
  # Unconditional weights -> a K-class model (zero class embedding):
  variables, cfg = extend_variables(variables, cfg, num_classes=3)
"""

from diffinf_jax.models.diffae.autoencoder import DiffAE
from diffinf_jax.models.diffae.autoencoder import extend_variables
from diffinf_jax.models.diffae.autoencoder import is_conditional
from diffinf_jax.models.diffae.encoder import Encoder
from diffinf_jax.models.diffae.presets import DiffAEConfig
from diffinf_jax.models.diffae.presets import PRESETS
from diffinf_jax.models.diffae.presets import get_preset
from diffinf_jax.models.diffae.unet import UNet


def create_model(config: DiffAEConfig | str | dict) -> DiffAE:
  """A DiffAE module from a config, a preset name or a config dict."""
  if isinstance(config, str):
    config = get_preset(config)
  elif isinstance(config, dict):
    config = DiffAEConfig.from_dict(config)
  return DiffAE(config)


def init_variables(model: DiffAE, rng, batch: int = 1):
  """Random variables {'params': {'encoder': ..., 'unet': ...}}."""
  import jax.numpy as jnp
  c = model.config
  x = jnp.zeros((batch, c.image_size, c.image_size, c.in_channels))
  return model.init(rng, x, jnp.zeros((batch,), jnp.int32),
                    method=DiffAE.init_all)


__all__ = ["DiffAE", "DiffAEConfig", "Encoder", "UNet", "PRESETS",
           "get_preset", "create_model", "init_variables", "extend_variables",
           "is_conditional"]
