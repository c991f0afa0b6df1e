"""Tiny Flax models covering every rule of the influence engine (helpers)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


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
  """GroupNorm, LayerNorm, RMSNorm, a dilated CIRCULAR conv, Dense, [B,T,D]."""
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
  """Variables with non-trivial BatchNorm running statistics (numpy draws)."""
  return random_variables(model, x, seed=seed)


# --- models for the rule table, the user-model contract and the API -------


class PlainSubDense(nn.Dense):
  """A Dense subclass that keeps Dense's __call__ (exact Dense rule)."""


class ScaledSubDense(nn.Dense):
  """A Dense subclass overriding __call__ around super().__call__."""

  def __call__(self, x):
    return 2.0 * super().__call__(x)


class SubConv(nn.Conv):
  """A Conv subclass (exact conv rule)."""


class Zoo(nn.Module):
  """Every exact-fast layer kind once, on an image and a token input.

  ConvTranspose (SAME stride 2; VALID transposed-kernel; CIRCULAR), ConvLocal,
  a Conv subclass, DenseGeneral over one and over two axes, Einsum with
  feature, group, reduced and kernel-only axes (ellipsis), Embed (negative
  ids wrap), attention projections (with QK LayerNorms), Dense subclasses
  with and without an overriding __call__, and Embed.attend as the head.
  """
  num_classes: int = 3

  @nn.compact
  def __call__(self, x, ids, *, train=False):
    b = x.shape[0]
    h = nn.ConvTranspose(3, (3, 3), strides=(2, 2))(x)
    h = nn.ConvTranspose(2, (3, 2), strides=(1, 2), padding="VALID",
                         transpose_kernel=True)(h[:, :4, :4])
    h = nn.ConvTranspose(2, (4, 3), strides=(2, 1), padding="CIRCULAR")(
        h[:, :3, :3])
    h = nn.ConvLocal(2, (3, 3), strides=2, padding="SAME")(h)
    h = SubConv(3, (2, 2), padding="VALID")(nn.tanh(h))
    t = h.reshape(b, -1, 3)                                # [B, T, 3]
    t = nn.DenseGeneral((2, 3), axis=-1)(t)                # [B, T, 2, 3]
    t = nn.Einsum((2, 3, 4), "bthd,hdk->bthk")(t)          # groups h
    t = nn.DenseGeneral(4, axis=(-2, -1))(nn.gelu(t))      # [B, T, 4]
    t = nn.Einsum((4, 2, 3), "...d,dkz->...k")(t[:, :, None] * t[:, None])
    e = nn.Embed(7, 2)(ids)                                # [B, S, 2]
    u = jnp.concatenate([t.reshape(b, -1, 2), e], axis=1)
    u = nn.MultiHeadDotProductAttention(num_heads=2, qkv_features=4,
                                        normalize_qk=True)(u)
    u = ScaledSubDense(4)(nn.tanh(u))
    u = PlainSubDense(4)(jnp.mean(u, axis=1))
    return nn.Embed(self.num_classes, 4).attend(u)


def tiny_vit():
  from diffinf_jax.bench.models import vit
  return vit.ViT(num_classes=3, patch_size=4, width=8, depth=2, num_heads=2,
                 mlp_dim=16)


def tiny_lm(vocab_size=11):
  from diffinf_jax.bench.models import transformer_lm
  return transformer_lm.TransformerLM(vocab_size=vocab_size, width=8,
                                      depth=2, num_heads=2, mlp_dim=16)


def random_variables(model, *inputs, seed=0, dtype=jnp.float32):
  """Random variables of the model's shapes, drawn in numpy.

  `model.init` is only traced (jax.eval_shape): compiling a whole model's
  initialisers costs seconds on a CPU, drawing its arrays milliseconds.
  Kernels and embeddings ~ N(0, 1 / fan_in), norm scales ~ 1 + N(0, 0.1^2),
  biases and means ~ N(0, 0.1^2), variances in [0.5, 1.5).
  """
  shapes = jax.eval_shape(model.init, jax.random.key(0), *inputs)
  rng = np.random.default_rng(seed)

  def draw(path, s):
    name = str(getattr(path[-1], "key", path[-1]))
    shape = s.shape
    if name == "var":
      v = rng.uniform(0.5, 1.5, shape)
    elif name == "scale":
      v = 1.0 + 0.1 * rng.normal(size=shape)
    elif name in ("bias", "mean") or len(shape) < 2:
      v = 0.1 * rng.normal(size=shape)
    else:
      v = rng.normal(size=shape) / np.sqrt(max(np.prod(shape[:-1]), 1))
    return jnp.asarray(v, dtype)
  return jax.tree_util.tree_map_with_path(draw, shapes)


def compile_fast(fn, *args):
  """jit + compile at XLA's lowest backend optimisation level (tests).

  Halves the compile time of the small programs tests run once; the HLO,
  and so the arithmetic, is the same.
  """
  return jax.jit(fn).lower(*args).compile(
      compiler_options={"xla_backend_optimization_level": 0})
