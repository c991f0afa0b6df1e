"""DiffAE (Preechakul et al. 2022) in Flax: semantic encoder + conditional UNet."""

from diffinf_jax.models.diffae.config import DiffAEConfig
from diffinf_jax.models.diffae.config import PRESETS
from diffinf_jax.models.diffae.config import get_preset
from diffinf_jax.models.diffae.model import DiffAE


def create_model(config: DiffAEConfig | str) -> DiffAE:
  if isinstance(config, str):
    config = get_preset(config)
  return DiffAE(config)


def init_variables(model: DiffAE, rng, batch: int = 1):
  import jax.numpy as jnp
  c = model.config
  x = jnp.zeros((batch, c.image_size, c.image_size, c.in_channels))
  return model.init(rng, x, jnp.zeros((batch,), jnp.int32),
                    method=DiffAE.init_all)


__all__ = ["DiffAE", "DiffAEConfig", "PRESETS", "get_preset", "create_model",
           "init_variables"]
