"""Tiny Flax models covering every rule of the influence engine (test helpers)."""

import flax.linen as nn
import jax
import jax.numpy as jnp


class MLP(nn.Module):
  """Plain MLP on flattened images."""
  hidden: int = 8
  num_classes: int = 3

  @nn.compact
  def __call__(self, x, *, train=False):
    x = x.reshape(x.shape[0], -1)
    x = nn.relu(nn.Dense(self.hidden)(x))
    x = nn.tanh(nn.Dense(self.hidden, use_bias=False)(x))
    return nn.Dense(self.num_classes)(x)


class SmallCNN(nn.Module):
  """Conv + BatchNorm net: strides, explicit/SAME/VALID padding, groups."""
  num_classes: int = 3
  branch: str = "auto"

  @nn.compact
  def __call__(self, x, *, train=False):
    x = nn.Conv(4, (3, 3), padding="SAME", use_bias=False)(x)
    x = nn.relu(nn.BatchNorm(use_running_average=not train)(x))
    x = nn.Conv(8, (3, 3), strides=2, padding=((1, 1), (1, 1)),
                use_bias=False)(x)
    x = nn.relu(nn.BatchNorm(use_running_average=not train)(x))
    x = nn.Conv(8, (2, 2), padding="VALID", feature_group_count=2)(x)
    x = nn.Conv(16, (1, 1), use_bias=False)(x)
    x = nn.Conv(8, (3, 3), padding="SAME")(x)  # 16 inputs: per-offset path
    x = nn.Conv(8, (1, 1), strides=2)(x)
    feats = jnp.mean(x, axis=(1, 2))
    h = nn.relu(nn.Dense(6)(feats))
    return nn.Dense(self.num_classes)(h), {"features": feats}


class NormNet(nn.Module):
  """GroupNorm, LayerNorm, RMSNorm, a dilated CIRCULAR conv, Dense on [B,T,D]."""
  num_classes: int = 3

  @nn.compact
  def __call__(self, x, *, train=False):
    x = nn.Conv(4, (3, 3), kernel_dilation=2, padding="CIRCULAR")(x)
    x = nn.GroupNorm(num_groups=2)(x)
    x = nn.gelu(x)
    b, h, w, c = x.shape
    t = x.reshape(b, h * w, c)
    t = nn.Dense(5)(t)                      # positions T = h*w
    t = nn.LayerNorm()(t)
    t = nn.RMSNorm()(t)
    x = jnp.mean(t, axis=1)
    return nn.Dense(self.num_classes)(x)


class Scaled(nn.Module):
  """A custom layer owning a parameter directly (generic fallback)."""

  @nn.compact
  def __call__(self, x):
    s = self.param("s", nn.initializers.normal(1.0), (x.shape[-1],))
    return x * s + jnp.sin(s)


class CustomNet(nn.Module):
  num_classes: int = 3

  @nn.compact
  def __call__(self, x, *, train=False):
    x = x.reshape(x.shape[0], -1)
    x = Scaled()(nn.Dense(6)(x))
    return nn.Dense(self.num_classes)(nn.relu(x))


class SharedNet(nn.Module):
  """Applies one Dense twice (shared weights: exact must refuse)."""

  @nn.compact
  def __call__(self, x, *, train=False):
    x = x.reshape(x.shape[0], -1)[:, :3]
    d = nn.Dense(3)
    return d(nn.relu(d(x)))


def init_with_stats(model, x, seed=0):
  """Variables with non-trivial BatchNorm running statistics."""
  variables = model.init(jax.random.key(seed), x)
  if "batch_stats" in variables:
    keys = iter(jax.random.split(jax.random.key(seed + 1), 1000))
    stats = jax.tree.map(
        lambda v: 0.3 * jax.random.normal(next(keys), v.shape, v.dtype),
        variables["batch_stats"])
    stats = jax.tree_util.tree_map_with_path(
        lambda p, v: jnp.abs(v) + 0.5 if p[-1].key == "var" else v, stats)
    variables = {**variables, "batch_stats": stats}
  return variables
