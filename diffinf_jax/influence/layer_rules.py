"""Per-example squared gradient norms of one layer from its input and output grad.

Pure math, no Flax: each function takes the layer input `x` (leading axis = the
B examples), the gradient `g` of the summed loss at the layer output (row n is
dL_n/dy_n, because examples never mix in inference mode) and returns `[B]`
squared Frobenius norms of that layer's parameter gradients. Weight gradients
are never formed for the whole batch; the per-example ones only where that is
the cheaper of the two exact forms (see `choose_branch`).

Formulas (a = input, g = output gradient, T positions per example):
  Dense, T = 1:   ||g a^T||^2 = ||a||^2 ||g||^2                 (Goodfellow)
  Dense / Conv:   ||G^T A||^2 = <A A^T, G G^T>_F                (ghost, T^2 form)
                  or form G^T A per example and square-sum      (materialise)
  bias:           ||sum_t g_t||^2
  affine norms:   d/dscale = sum over positions of g * x_hat, d/dbias = sum g

Conv norms are reduced a chunk of examples at a time (`map_batch_chunks`,
chunks sized by `CHUNK_BYTES`) from input slices grouped by kernel offset
(`OFFSET_GROUP_WIDTH`): only one chunk's temporaries are ever alive, and the
GEMMs run on cache-resident data (2-3x faster than batch-wide on CPU).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Sequence

import jax
import jax.numpy as jnp
from jax import lax

BRANCH_RULES = ("time", "space", "ghost", "materialize")
_HI = lax.Precision.HIGHEST  # fp32 matmuls must not drop to TF32/bf16 on GPU.
# Conv norms multiply the output gradient with the input slices seen by the
# kernel offsets, concatenated a few offsets at a time to about this many
# columns: one skinny GEMM per offset is slow for few input channels, and one
# full [B, T, K C_in] patch tensor costs memory traffic (measured on CPU).
OFFSET_GROUP_WIDTH = 192
# Working set (layer input + output gradient + patches) of one chunk of
# examples whose norms are reduced together: small enough to stay in the last
# level cache of a CPU. One batch-wide reduction keeps every example's patches
# alive at once and runs 2-3x slower on CPU (memory-bound copies, skinny GEMMs).
CHUNK_BYTES = 16 << 20


def _acc(x: jax.Array) -> jax.Array:
  """Casts to an accumulation dtype of at least float32 (bf16 forwards)."""
  dtype = jnp.promote_types(x.dtype, jnp.float32)
  return x.astype(dtype)


def choose_branch(positions: int, d_in: int, d_out: int, rule: str,
                  groups: int = 1) -> str:
  """Ghost (Gram) or materialise for one layer, statically from shapes.

  Args:
    positions: T, positions per example sharing the weight (output pixels).
    d_in: D, patch length per group (C_in * prod(kernel) / groups).
    d_out: output channels per group.
    rule: "time" (fewer multiply-adds: ghost iff T (D + C) < D C), "space"
      (fewer floats per example: ghost iff 2 T^2 <= D C), or a forced branch.
    groups: feature groups (the same rule holds per group).

  Returns:
    "ghost" or "materialize".
  """
  del groups  # Both costs scale with the group count alike.
  if rule in ("ghost", "materialize"):
    return rule
  if rule == "time":
    return "ghost" if positions * (d_in + d_out) < d_in * d_out else "materialize"
  if rule == "space":
    return "ghost" if 2 * positions**2 <= d_in * d_out else "materialize"
  raise ValueError(f"conv branch rule {rule!r}: use one of {BRANCH_RULES}")


def gram_or_outer_sq_norm(a: jax.Array, g: jax.Array, branch: str) -> jax.Array:
  """||sum_t g_t a_t^T||^2 per example and group.

  Args:
    a: [B, T, G, D] inputs (patches) per position and group.
    g: [B, T, G, C] output gradients per position and group.
    branch: "ghost" (T x T Gram matrices) or "materialize" (C x D per example).

  Returns:
    [B] squared norms summed over groups.
  """
  if a.shape[1] == 1:  # One position: the outer product's norm factorises.
    return jnp.sum(jnp.sum(a * a, -1) * jnp.sum(g * g, -1), axis=(1, 2))
  if branch == "ghost":
    ka = jnp.einsum("btgd,bsgd->bgts", a, a, precision=_HI)
    kg = jnp.einsum("btgc,bsgc->bgts", g, g, precision=_HI)
    return jnp.sum(ka * kg, axis=(1, 2, 3))
  w = jnp.einsum("btgc,btgd->bgcd", g, a, precision=_HI)
  return jnp.sum(w * w, axis=(1, 2, 3))


def chunk_size(batch: int, bytes_per_example: float,
               budget: int | None = None, devices: int | None = None) -> int:
  """Examples per chunk: a divisor of `batch` that fits `budget` bytes.

  When the batch splits evenly over the devices (a data-parallel batch is
  sharded that way), the chunk is a multiple of the device count, so that
  each chunk spans every device's shard (see `map_batch_chunks`) and each
  device reduces its share of `budget`.
  """
  budget = CHUNK_BYTES if budget is None else budget
  devices = jax.device_count() if devices is None else devices
  if devices < 1 or batch % devices:
    devices = 1
  local = batch // devices
  fit = max(1, int(budget // max(bytes_per_example, 1)))
  return devices * max(d for d in range(1, min(local, fit) + 1)
                       if local % d == 0)


def map_batch_chunks(fn, arrays: Sequence[jax.Array], chunk: int) -> jax.Array:
  """fn(*arrays) -> [B], evaluated `chunk` examples at a time (lax.map).

  Examples are independent, so the per-example results are those of one
  batch-wide call; only the chunk's temporaries are alive at any time. With
  several devices, chunk i holds examples i, i + n, i + 2n, ... (n = B /
  chunk): the loop then runs over an axis that a batch sharded in contiguous
  blocks does not split, so every device reduces its own examples without
  gathering the others'. With one device, chunks are contiguous (no
  transposed copies of the inputs).
  """
  b = arrays[0].shape[0]
  if chunk >= b:
    return fn(*arrays)
  n = b // chunk
  if jax.device_count() == 1:
    split = [a.reshape(n, chunk, *a.shape[1:]) for a in arrays]
    return lax.map(lambda xs: fn(*xs), split).reshape(b)
  split = [jnp.swapaxes(a.reshape(chunk, n, *a.shape[1:]), 0, 1)
           for a in arrays]
  return jnp.swapaxes(lax.map(lambda xs: fn(*xs), split), 0, 1).reshape(b)


def dense_sq_norms(x: jax.Array, g: jax.Array, *, use_bias: bool,
                   rule: str = "time") -> jax.Array:
  """nn.Dense (kernel [D_in, D_out] on the last axis) per-example norms.

  Args:
    x: [B, ..., D_in] layer input; middle axes are positions sharing the weight.
    g: [B, ..., D_out] gradient at the layer output.
    use_bias: include the bias leaf.
    rule: branch rule for inputs with more than one position.

  Returns:
    [B] squared norms of (kernel, bias) gradients.
  """
  b = x.shape[0]
  a = _acc(x).reshape(b, -1, 1, x.shape[-1])
  gg = _acc(g).reshape(b, -1, 1, g.shape[-1])
  branch = choose_branch(a.shape[1], a.shape[-1], gg.shape[-1], rule)
  out = gram_or_outer_sq_norm(a, gg, branch)
  if use_bias:
    out = out + jnp.sum(jnp.sum(gg, axis=1) ** 2, axis=(1, 2))
  return out


@dataclasses.dataclass(frozen=True)
class ConvSpec:
  """The geometry of an nn.Conv call, as the module passes it to lax.

  `pre_pad` is the mode of padding Flax applies itself before a VALID conv
  ("wrap" for CIRCULAR, "reflect" for REFLECT, "causal"), else None.
  """
  kernel_size: tuple[int, ...]
  strides: tuple[int, ...]
  padding: str | tuple[tuple[int, int], ...]
  input_dilation: tuple[int, ...]
  kernel_dilation: tuple[int, ...]
  groups: int
  use_bias: bool
  pre_pad: str | None = None


def _pre_pad(x: jax.Array, spec: ConvSpec) -> jax.Array:
  """Flax's own CIRCULAR / REFLECT / CAUSAL padding of the input (NH..C)."""
  dil_k = [(k - 1) * d + 1 for k, d in zip(spec.kernel_size, spec.kernel_dilation)]
  if spec.pre_pad == "causal":
    pads = [(0, 0), (dil_k[0] - 1, 0), (0, 0)]
    return jnp.pad(x, pads)
  pads = [(0, 0)] + [((k - 1) // 2, k // 2) for k in dil_k] + [(0, 0)]
  return jnp.pad(x, pads, mode=spec.pre_pad)


def shifted_inputs(x: jax.Array, spec: ConvSpec) -> list[jax.Array]:
  """The conv input seen by each kernel offset, as strided slices.

  Output pixel o of the conv reads x_pad[o * stride + k * dilation] for kernel
  offset k, so slice k holds exactly the inputs multiplied by kernel[k].

  Args:
    x: [N, *spatial, C_in] the conv input as the module received it.
    spec: the conv geometry.

  Returns:
    prod(kernel_size) arrays [N, *out_spatial, C_in].
  """
  if spec.pre_pad is not None:
    x = _pre_pad(x, spec)
  nsp = len(spec.kernel_size)
  if any(d != 1 for d in spec.input_dilation):
    cfg = [(0, 0, 0)] + [(0, 0, d - 1) for d in spec.input_dilation] + [(0, 0, 0)]
    x = lax.pad(x, jnp.zeros((), x.dtype), cfg)
  dil_k = [(k - 1) * d + 1 for k, d in zip(spec.kernel_size, spec.kernel_dilation)]
  if isinstance(spec.padding, str):
    pads = lax.padtype_to_pads(x.shape[1:-1], dil_k, spec.strides, spec.padding)
  else:
    pads = spec.padding
  cfg = [(0, 0, 0)] + [(lo, hi, 0) for lo, hi in pads] + [(0, 0, 0)]
  x = lax.pad(x, jnp.zeros((), x.dtype), cfg)
  out = [(x.shape[1 + i] - dil_k[i]) // spec.strides[i] + 1 for i in range(nsp)]
  slices = []
  for offs in itertools.product(*[range(k) for k in spec.kernel_size]):
    start = [0] + [o * d for o, d in zip(offs, spec.kernel_dilation)] + [0]
    limit = ([x.shape[0]]
             + [s + (n - 1) * st + 1
                for s, n, st in zip(start[1:-1], out, spec.strides)]
             + [x.shape[-1]])
    slices.append(lax.slice(x, start, limit, [1, *spec.strides, 1]))
  return slices


def conv_patches(x: jax.Array, spec: ConvSpec) -> jax.Array:
  """Input patches [N, *out_spatial, K, C_in] (K = prod(kernel_size)).

  Built from strided slices: `lax.conv_general_dilated_patches` is itself a
  convolution with a one-hot kernel (D x D multiply-adds per output pixel).
  """
  return jnp.stack(shifted_inputs(x, spec), axis=-2)


def conv_branch(x_shape: Sequence[int], y_shape: Sequence[int], spec: ConvSpec,
                rule: str) -> tuple[str, int, int, int]:
  """(branch, T, D, C_out per group) of a conv from its input/output shapes."""
  nsp = len(spec.kernel_size)
  extra = math.prod(x_shape[1:len(x_shape) - nsp - 1])
  t = extra * math.prod(y_shape[len(y_shape) - nsp - 1:-1])
  d = x_shape[-1] // spec.groups * math.prod(spec.kernel_size)
  c = y_shape[-1] // spec.groups
  return choose_branch(t, d, c, rule, spec.groups), t, d, c


def conv_sq_norms(x: jax.Array, g: jax.Array, spec: ConvSpec,
                  rule: str = "time") -> jax.Array:
  """nn.Conv (shared weights, NH..C layout) per-example squared norms.

  Args:
    x: [B, *extra, *spatial, C_in] conv input (extra axes count as positions).
    g: [B, *extra, *out_spatial, C_out] gradient at the conv output.
    spec: the conv geometry.
    rule: branch rule (see `choose_branch`).

  Returns:
    [B] squared norms of (kernel, bias) gradients.
  """
  branch, t, d, _ = conv_branch(x.shape, g.shape, spec, rule)
  b = x.shape[0]
  item = jnp.dtype(_acc(x).dtype).itemsize
  per_example = item * ((x.size + g.size) // b + t * d * spec.groups)
  return map_batch_chunks(
      lambda xc, gc: _conv_sq_norms_block(xc, gc, spec, branch), (x, g),
      chunk_size(b, per_example))


def _conv_sq_norms_block(x: jax.Array, g: jax.Array, spec: ConvSpec,
                         branch: str) -> jax.Array:
  """conv_sq_norms of one chunk of examples with a fixed branch."""
  nsp = len(spec.kernel_size)
  b, grp = x.shape[0], spec.groups
  xf = _acc(x).reshape((-1,) + x.shape[x.ndim - nsp - 1:])
  gg = _acc(g).reshape(b, -1, grp, g.shape[-1] // grp)
  cin = xf.shape[-1] // grp
  shifted = [s.reshape(b, -1, grp, cin) for s in shifted_inputs(xf, spec)]
  # ||W||^2 = sum over groups of kernel offsets of ||G^T X_group||^2 (disjoint
  # blocks of the per-example kernel gradient), and U U^T = sum of the
  # groups' X X^T: no whole patch tensor is needed.
  step = max(1, -(-OFFSET_GROUP_WIDTH // cin))
  parts = [jnp.concatenate(shifted[i:i + step], axis=-1) if step > 1
           else shifted[i] for i in range(0, len(shifted), step)]
  if branch == "materialize" or parts[0].shape[1] == 1:
    out = sum(gram_or_outer_sq_norm(p, gg, branch) for p in parts)
  else:
    ka = sum(jnp.einsum("btgd,bsgd->bgts", p, p, precision=_HI)
             for p in parts)
    kg = jnp.einsum("btgc,bsgc->bgts", gg, gg, precision=_HI)
    out = jnp.sum(ka * kg, axis=(1, 2, 3))
  if spec.use_bias:
    out = out + jnp.sum(jnp.sum(gg, axis=1) ** 2, axis=(1, 2))
  return out


def affine_norm_sq_norms(x_hat: jax.Array, g: jax.Array,
                         feature_axes: Sequence[int], *, use_scale: bool,
                         use_bias: bool) -> jax.Array:
  """Scale/bias of BatchNorm (inference), LayerNorm, GroupNorm, RMSNorm.

  y = x_hat * scale + bias with scale, bias broadcast over all axes except the
  feature axes, so per example d/dscale = sum(g * x_hat) and d/dbias = sum(g)
  over the other (non-batch) axes.

  Args:
    x_hat: [B, ...] the normalised input (the layer's output with scale 1,
      bias 0).
    g: [B, ...] gradient at the layer output.
    feature_axes: non-negative axes of the parameters (never 0).
    use_scale: the layer has a scale leaf.
    use_bias: the layer has a bias leaf.

  Returns:
    [B] squared norms.
  """
  g = _acc(g)
  axes = tuple(a for a in range(1, g.ndim) if a not in feature_axes)
  out = jnp.zeros(g.shape[0], g.dtype)
  if use_scale:
    gs = jnp.sum(g * _acc(x_hat), axis=axes)
    out = out + jnp.sum(gs.reshape(g.shape[0], -1) ** 2, axis=1)
  if use_bias:
    gb = jnp.sum(g, axis=axes)
    out = out + jnp.sum(gb.reshape(g.shape[0], -1) ** 2, axis=1)
  return out
