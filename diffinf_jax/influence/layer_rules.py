"""A layer's per-example squared gradient norms from its input and output grad.

Pure math, no Flax: each function takes the layer input `x` (leading axis = the
B examples), the gradient `g` of the summed loss at the layer output (row n is
dL_n/dy_n, because examples never mix in inference mode) and returns `[B]`
squared Frobenius norms of that layer's parameter gradients. Batch-wide weight
gradients are never formed; per-example ones only where that is the cheaper
of the two exact forms (see `choose_branch`), a cache-sized chunk of examples
at a time.

Formulas (a = input, g = output gradient, T positions per example):
  Dense, T = 1:   ||g a^T||^2 = ||a||^2 ||g||^2                 (Goodfellow)
  Dense / Conv /  ||G^T A||^2 = <A A^T, G G^T>_F             (ghost, T^2 form)
  any einsum:     or form G^T A per example and square-sum   (materialise)
  bias:           ||sum_t g_t||^2
  Embed:          sum over used rows r of ||sum_{t: id_t = r} g_t||^2
                  = sum_{t,t'} [id_t = id_t'] g_t . g_t'
  locally conn.:  sum over output pixels p of ||a_p||^2 ||g_p||^2
  affine norms:   d/dscale = sum over positions of g * x_hat, d/dbias = sum g

Every matmul-like layer (Dense, DenseGeneral, Einsum, Embed.attend) is
described by an `EinsumSpec`: its axes are sorted into positions (shared
weight), contracted, grouped (a weight slice per group) and feature axes, which
turns it into the G^T A form above. Convolutions (and transposed convolutions,
which are convolutions with a dilated input) are reduced a chunk of examples at
a time (`map_batch_chunks`, chunks sized by `CHUNK_BYTES`) from input slices
grouped by kernel offset (`OFFSET_GROUP_WIDTH`): only one chunk's temporaries
are ever alive, and the GEMMs run on cache-resident data.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import string
from typing import Sequence

import jax
import jax.numpy as jnp
from jax import lax

BRANCH_RULES = ("time", "space", "ghost", "materialize")
# The branch rule every entry point uses unless told otherwise: fewer
# multiply-adds wins (see `choose_branch`).
DEFAULT_BRANCH_RULE = "time"
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
# A matmul-like layer whose per-example norm takes at least this many
# multiply-adds (a language model's vocabulary head: T^2 (D + V)) is reduced
# one example at a time: XLA:CPU's batched GEMMs with a long contraction run
# 2-3x below its plain GEMMs (measured: T 128, V 8192).
PER_EXAMPLE_LOOP_MACS = 32 << 20
# Embed: below this many positions per example the T x T form (a Gram of the
# output gradients masked by equal ids) beats sorting the ids and summing the
# gradients of equal runs (sorts and scatters are slow next to small GEMMs).
EMBED_GHOST_MAX_POSITIONS = 512


def acc(x: jax.Array) -> jax.Array:
  """Casts to an accumulation dtype of at least float32 (bf16 forwards)."""
  dtype = jnp.promote_types(x.dtype, jnp.float32)
  return x.astype(dtype)


def choose_branch(positions: int, d_in: int, d_out: int, rule: str,
                  groups: int = 1) -> str:
  """Ghost (Gram) or materialise for one layer, statically from shapes.

  Args:
    positions: T, positions per example sharing the weight (output pixels,
      tokens).
    d_in: D, input length per group (C_in * prod(kernel) / groups).
    d_out: output features per group.
    rule: "time" (fewer multiply-adds: ghost iff T (D + C) <= D C; ties go
      to ghost, whose GEMMs write T x T instead of D x C floats), "space"
      (fewer floats per example: ghost iff 2 T^2 <= D C), or a forced branch.
    groups: feature groups (the same rule holds per group).

  Returns:
    "ghost" or "materialize".
  """
  del groups  # Both costs scale with the group count alike.
  if rule in ("ghost", "materialize"):
    return rule
  if rule == "time":
    return ("ghost" if positions * (d_in + d_out) <= d_in * d_out
            else "materialize")
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
  if a.shape[2] == 1:
    # One group: plain batched GEMMs. XLA:CPU runs the grouped einsums below
    # 2-4x slower even for a group axis of size 1 (layout copies).
    a, g = a[:, :, 0], g[:, :, 0]
    if branch == "ghost":
      return jnp.sum(gram(a) * gram(g), axis=(1, 2))
    w = jnp.einsum("btc,btd->bcd", g, a, precision=_HI)
    return jnp.sum(w * w, axis=(1, 2))
  if branch == "ghost":
    ka = jnp.einsum("btgd,bsgd->bgts", a, a, precision=_HI)
    kg = jnp.einsum("btgc,bsgc->bgts", g, g, precision=_HI)
    return jnp.sum(ka * kg, axis=(1, 2, 3))
  w = jnp.einsum("btgc,btgd->bgcd", g, a, precision=_HI)
  return jnp.sum(w * w, axis=(1, 2, 3))


def _sq_norm_one(a: jax.Array, g: jax.Array, branch: str) -> jax.Array:
  """||g^T a||^2 of one example: a [T, D], g [T, C]."""
  if branch == "ghost":
    return jnp.sum(jnp.matmul(a, a.T, precision=_HI)
                   * jnp.matmul(g, g.T, precision=_HI))
  w = jnp.matmul(g.T, a, precision=_HI)
  return jnp.sum(w * w)


def gram(a: jax.Array) -> jax.Array:
  """[B, T, T] per-example Gram matrices a_n a_n^T of [B, T, D]."""
  if a.shape[0] == 1:  # A plain GEMM: XLA:CPU's batch-1 dot is slower.
    return jnp.matmul(a[0], a[0].T, precision=_HI)[None]
  return jnp.einsum("btd,bsd->bts", a, a, precision=_HI)


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


# --- matmul-like layers: Dense, DenseGeneral, Einsum, Embed.attend ----------


@dataclasses.dataclass(frozen=True)
class EinsumSpec:
  """A layer y = einsum(f"{lhs},{rhs}->{out}", x, kernel) (+ bias).

  One letter per axis (no ellipsis, no letter twice in one operand); `lhs[0]`
  is the example axis, which must be in `out` and not in `rhs`. The letters
  fall into roles that fix the per-example kernel gradient
  grad[c, h, k, z] = sum_p A[p, h, c] G[p, h, k] (the same for every z):

    positions    in x and y, not the kernel (tokens, pixels: shared weight)
    contracted   in x and the kernel, not y
    groups       in x, the kernel and y (one weight slice per group, e.g. heads)
    features     in the kernel and y only
    reduced      in x only (summed before meeting the kernel)
    kernel_only  in the kernel only (summed in the forward: every slice gets
                 the same gradient, so the norm scales by their count)

  The bias (Flax's Einsum / Dense / DenseGeneral) spans the output's group and
  feature axes and is broadcast over the example and position axes.
  """
  lhs: str
  rhs: str
  out: str
  kernel_shape: tuple[int, ...]
  use_bias: bool

  def __post_init__(self):
    for name, s in (("lhs", self.lhs), ("rhs", self.rhs), ("out", self.out)):
      if len(set(s)) != len(s):
        raise ValueError(f"einsum {self}: a repeated index in {name} "
                         "(a diagonal) has no exact rule")
    if self.lhs[:1] in self.rhs or self.lhs[:1] not in self.out:
      raise ValueError(f"einsum {self}: the input's leading (example) axis "
                       "must reach the output without meeting the kernel")
    if set(self.out) - set(self.lhs) - set(self.rhs):
      raise ValueError(f"einsum {self}: output index from no operand")

  @property
  def batch(self) -> str:
    return self.lhs[0]

  def _pick(self, source: str, inside: str, outside: str) -> str:
    return "".join(c for c in source if c != self.batch
                   and all(c in s for s in inside)
                   and not any(c in s for s in outside))

  @property
  def positions(self) -> str:
    return self._pick(self.lhs, (self.out,), (self.rhs,))

  @property
  def contracted(self) -> str:
    return self._pick(self.lhs, (self.rhs,), (self.out,))

  @property
  def groups(self) -> str:
    return self._pick(self.lhs, (self.rhs, self.out), ())

  @property
  def features(self) -> str:
    return self._pick(self.rhs, (self.out,), (self.lhs,))

  @property
  def kernel_only(self) -> str:
    return self._pick(self.rhs, (), (self.lhs, self.out))

  def sizes(self, x_shape: Sequence[int]) -> dict[str, int]:
    """Axis sizes by letter, from the input and kernel shapes."""
    sizes = dict(zip(self.lhs, x_shape))
    sizes.update(zip(self.rhs, self.kernel_shape))
    return sizes


def _letters(n: int, avoid: str = "") -> str:
  pool = [c for c in string.ascii_letters if c not in avoid]
  return "".join(pool[:n])


def dense_spec(x_ndim: int, kernel_shape: Sequence[int],
               use_bias: bool) -> EinsumSpec:
  """nn.Dense: kernel [D_in, D_out] on the last axis of x [B, ..., D_in]."""
  axes = _letters(x_ndim + 1)
  lhs, feat = axes[:x_ndim], axes[x_ndim]
  return EinsumSpec(lhs, lhs[-1] + feat, lhs[:-1] + feat, tuple(kernel_shape),
                    use_bias)


def dense_general_spec(x_ndim: int, axis: Sequence[int],
                       kernel_shape: Sequence[int],
                       use_bias: bool) -> EinsumSpec:
  """nn.DenseGeneral without batch_dims: kernel [*x.shape[axis], *features].

  The output is x's free axes in order, then the features (lax.dot_general's
  layout).
  """
  axis = [a % x_ndim for a in axis]
  n_feat = len(kernel_shape) - len(axis)
  letters = _letters(x_ndim + n_feat)
  lhs, feat = letters[:x_ndim], letters[x_ndim:]
  rhs = "".join(lhs[a] for a in axis) + feat
  out = "".join(c for i, c in enumerate(lhs) if i not in axis) + feat
  return EinsumSpec(lhs, rhs, out, tuple(kernel_shape), use_bias)


def einsum_spec(equation: str, x_shape: Sequence[int],
                kernel_shape: Sequence[int], use_bias: bool) -> EinsumSpec:
  """nn.Einsum's equation (ellipsis allowed) as an EinsumSpec."""
  import opt_einsum  # A JAX dependency; expands "..." like Flax itself does.
  lhs_rhs, out, _ = opt_einsum.parser.parse_einsum_input(
      (equation.replace(" ", ""), jax.ShapeDtypeStruct(tuple(x_shape),
                                                       jnp.float32),
       jax.ShapeDtypeStruct(tuple(kernel_shape), jnp.float32)))
  lhs, rhs = lhs_rhs.split(",")
  return EinsumSpec(lhs, rhs, out, tuple(kernel_shape), use_bias)


def attend_spec(x_ndim: int, kernel_shape: Sequence[int]) -> EinsumSpec:
  """nn.Embed.attend: y = x @ embedding.T, embedding [V, D]."""
  letters = _letters(x_ndim + 1)
  lhs, vocab = letters[:x_ndim], letters[x_ndim]
  return EinsumSpec(lhs, vocab + lhs[-1], lhs[:-1] + vocab,
                    tuple(kernel_shape), False)


def einsum_operands(x: jax.Array, g: jax.Array, spec: EinsumSpec
                    ) -> tuple[jax.Array, jax.Array]:
  """(A [B, T, G, D], G [B, T, G, C]) of the per-example G^T A form."""
  sizes = spec.sizes(x.shape)
  prod = lambda s: math.prod(sizes[c] for c in s)
  pos, grp = spec.positions, spec.groups
  b = x.shape[0]
  a = jnp.einsum(f"{spec.lhs}->{spec.batch}{pos}{grp}{spec.contracted}",
                 acc(x))
  gg = jnp.einsum(f"{spec.out}->{spec.batch}{pos}{grp}{spec.features}",
                  acc(g))
  shape = (b, prod(pos), prod(grp))
  return (a.reshape(*shape, prod(spec.contracted)),
          gg.reshape(*shape, prod(spec.features)))


def einsum_branch(x_shape: Sequence[int], spec: EinsumSpec,
                  rule: str) -> tuple[str, int, int, int, int]:
  """(branch, T, D, C, groups) of a matmul-like layer from its input shape."""
  sizes = spec.sizes(x_shape)
  prod = lambda s: math.prod(sizes[c] for c in s)
  t, d, c = prod(spec.positions), prod(spec.contracted), prod(spec.features)
  branch = "outer" if t == 1 else choose_branch(t, d, c, rule)
  return branch, t, d, c, prod(spec.groups)


def einsum_sq_norms(x: jax.Array, g: jax.Array, spec: EinsumSpec,
                    rule: str = DEFAULT_BRANCH_RULE) -> jax.Array:
  """Per-example squared norms of a matmul-like layer's (kernel, bias) grads.

  Args:
    x: the layer input, axes as `spec.lhs` (example axis first).
    g: [B, ...] gradient at the layer output, axes as `spec.out`.
    spec: the layer's contraction.
    rule: branch rule (see `choose_branch`).

  Returns:
    [B] squared norms.
  """
  branch, t, d, c, grp = einsum_branch(x.shape, spec, rule)
  a, gg = einsum_operands(x, g, spec)
  b = x.shape[0]
  item = jnp.dtype(a.dtype).itemsize
  temp = 2 * t * t if branch == "ghost" else c * d if branch != "outer" else 0
  per_example = item * grp * (t * (d + c) + temp)
  macs = grp * (t * t * (d + c) if branch == "ghost" else t * d * c)
  chunk = chunk_size(b, per_example,
                     budget=1 if macs >= PER_EXAMPLE_LOOP_MACS else None)
  if chunk == 1 and grp == 1 and t > 1:
    # One example per step, as plain [T, D] GEMMs: loop inputs with unit
    # axes (chunk, group) make XLA:CPU copy the operands every step.
    out = lax.map(lambda ag: _sq_norm_one(ag[0], ag[1], branch),
                  (a[:, :, 0], gg[:, :, 0]))
  else:
    out = map_batch_chunks(
        lambda ac, gc: gram_or_outer_sq_norm(ac, gc, branch), (a, gg), chunk)
  sizes = spec.sizes(x.shape)
  out = out * math.prod(sizes[k] for k in spec.kernel_only)
  if spec.use_bias:
    out = out + jnp.sum(jnp.sum(gg, axis=1) ** 2, axis=(1, 2))
  return out


def dense_sq_norms(x: jax.Array, g: jax.Array, *, use_bias: bool,
                   rule: str = DEFAULT_BRANCH_RULE) -> jax.Array:
  """nn.Dense (kernel [D_in, D_out] on the last axis) per-example norms.

  Args:
    x: [B, ..., D_in] layer input; middle axes are positions sharing the weight.
    g: [B, ..., D_out] gradient at the layer output.
    use_bias: include the bias leaf.
    rule: branch rule for inputs with more than one position.

  Returns:
    [B] squared norms of (kernel, bias) gradients.
  """
  spec = dense_spec(x.ndim, (x.shape[-1], g.shape[-1]), use_bias)
  return einsum_sq_norms(x, g, spec, rule)


# --- embeddings ----------------------------------------------------------


def embed_branch(positions: int, features: int, rule: str) -> str:
  """"ghost" (T x T id-equality Gram) or "segment" (sort ids, sum runs)."""
  if rule == "ghost":
    return "ghost"
  if rule == "materialize":
    return "segment"
  if rule == "time":
    return "ghost" if positions <= EMBED_GHOST_MAX_POSITIONS else "segment"
  if rule == "space":  # T^2 Gram entries vs T x F row sums per example
    return "ghost" if positions <= features else "segment"
  raise ValueError(f"branch rule {rule!r}: use one of {BRANCH_RULES}")


def embed_sq_norms(ids: jax.Array, g: jax.Array, num_embeddings: int,
                   rule: str = DEFAULT_BRANCH_RULE) -> jax.Array:
  """nn.Embed: the gradient is g scattered into the rows the example used.

  Row r of example n's table gradient is the sum of g_t over the positions t
  with id_t = r, so its squared norm is sum_{t,t'} [id_t = id_t'] g_t . g_t':
  nothing of the table's size is ever formed.

  Args:
    ids: [B, ...] integer ids (negative ids wrap, as jnp.take does).
    g: [B, ..., F] gradient at the embedding output.
    num_embeddings: V, rows of the table (V = 1 broadcasts row 0).
    rule: branch rule (see `embed_branch`).

  Returns:
    [B] squared norms of the table gradient.
  """
  b = ids.shape[0]
  ids = ids.reshape(b, -1)
  t = ids.shape[1]
  g = acc(g).reshape(b, t, -1)
  if num_embeddings == 1:
    ids = jnp.zeros_like(ids)
  ids = jnp.where(ids < 0, ids + num_embeddings, ids)
  if embed_branch(t, g.shape[-1], rule) == "ghost":
    same = ids[:, :, None] == ids[:, None, :]
    gram = jnp.einsum("btf,bsf->bts", g, g, precision=_HI)
    return jnp.sum(jnp.where(same, gram, 0.0), axis=(1, 2))
  order = jnp.argsort(ids, axis=1)
  sorted_ids = jnp.take_along_axis(ids, order, axis=1)
  sorted_g = jnp.take_along_axis(g, order[..., None], axis=1)
  # A new segment starts wherever the sorted id changes; segments are
  # numbered globally (example n owns segments n T ... n T + T - 1).
  starts = jnp.concatenate([jnp.ones((b, 1), bool),
                            sorted_ids[:, 1:] != sorted_ids[:, :-1]], axis=1)
  seg = jnp.cumsum(starts, axis=1) - 1 + t * jnp.arange(b)[:, None]
  sums = jax.ops.segment_sum(sorted_g.reshape(b * t, -1), seg.reshape(-1),
                             num_segments=b * t, indices_are_sorted=True)
  return jnp.sum(sums.reshape(b, -1) ** 2, axis=1)


# --- convolutions --------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ConvSpec:
  """The geometry of a convolution, as lax.conv_general_dilated takes it.

  `pre_pad` is the mode of padding Flax applies itself before a VALID conv
  ("wrap" for CIRCULAR, "reflect" for REFLECT, "causal"), else None. A
  transposed convolution is the convolution with `input_dilation` = its
  strides and unit strides (its kernel is flipped and transposed, which
  changes no norm).
  """
  kernel_size: tuple[int, ...]
  strides: tuple[int, ...]
  padding: str | tuple[tuple[int, int], ...]
  input_dilation: tuple[int, ...]
  kernel_dilation: tuple[int, ...]
  groups: int
  use_bias: bool
  pre_pad: str | None = None


def _dilated_kernel(spec: ConvSpec) -> list[int]:
  """Spatial extent of the kernel after dilation: (k - 1) d + 1."""
  return [(k - 1) * d + 1
          for k, d in zip(spec.kernel_size, spec.kernel_dilation)]


def _pre_pad(x: jax.Array, spec: ConvSpec) -> jax.Array:
  """Flax's own CIRCULAR / REFLECT / CAUSAL padding of the input (NH..C)."""
  dil_k = _dilated_kernel(spec)
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
    cfg = ([(0, 0, 0)] + [(0, 0, d - 1) for d in spec.input_dilation]
           + [(0, 0, 0)])
    x = lax.pad(x, jnp.zeros((), x.dtype), cfg)
  dil_k = _dilated_kernel(spec)
  if isinstance(spec.padding, str):
    pads = lax.padtype_to_pads(x.shape[1:-1], dil_k, spec.strides, spec.padding)
  else:
    pads = spec.padding
  # Negative padding (a transposed conv with large explicit padding) crops.
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
                  rule: str = DEFAULT_BRANCH_RULE) -> jax.Array:
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
  item = jnp.dtype(acc(x).dtype).itemsize
  per_example = item * ((x.size + g.size) // b + t * d * spec.groups)
  return map_batch_chunks(
      lambda xc, gc: _conv_sq_norms_block(xc, gc, spec, branch), (x, g),
      chunk_size(b, per_example))


def _conv_sq_norms_block(x: jax.Array, g: jax.Array, spec: ConvSpec,
                         branch: str) -> jax.Array:
  """conv_sq_norms of one chunk of examples with a fixed branch."""
  nsp = len(spec.kernel_size)
  b, grp = x.shape[0], spec.groups
  xf = acc(x).reshape((-1,) + x.shape[x.ndim - nsp - 1:])
  gg = acc(g).reshape(b, -1, grp, g.shape[-1] // grp)
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
  elif grp == 1:  # Plain batched GEMMs (see gram_or_outer_sq_norm).
    ka = sum(gram(p[:, :, 0]) for p in parts)
    out = jnp.sum(ka * gram(gg[:, :, 0]), axis=(1, 2))
  else:
    ka = sum(jnp.einsum("btgd,bsgd->bgts", p, p, precision=_HI)
             for p in parts)
    kg = jnp.einsum("btgc,bsgc->bgts", gg, gg, precision=_HI)
    out = jnp.sum(ka * kg, axis=(1, 2, 3))
  if spec.use_bias:
    out = out + jnp.sum(jnp.sum(gg, axis=1) ** 2, axis=(1, 2))
  return out


def circular_transpose_grad(g: jax.Array, pre_shape: Sequence[int],
                            periods: Sequence[int],
                            pads_lo: Sequence[int]) -> jax.Array:
  """Gradient at a CIRCULAR nn.ConvTranspose's inner VALID output.

  Flax pads the VALID transposed-conv output y (spatial sizes `pre_shape`) by
  `pads_lo` in front to whole periods and sums the periods, so y[i] lands on
  output pixel (i + lo) mod period: its gradient is g read periodically.

  Args:
    g: [N, *periods, C] gradient at the layer output.
    pre_shape: spatial sizes of the VALID output.
    periods: output spatial sizes (input size times stride).
    pads_lo: Flax's front padding per spatial axis.

  Returns:
    [N, *pre_shape, C].
  """
  for axis, (size, period, lo) in enumerate(zip(pre_shape, periods, pads_lo),
                                            start=1):
    idx = (jnp.arange(size) + lo) % period
    g = jnp.take(g, idx, axis=axis)
  return g


def conv_local_sq_norms(x: jax.Array, g: jax.Array, spec: ConvSpec
                        ) -> jax.Array:
  """nn.ConvLocal (a kernel per output pixel) per-example squared norms.

  Each output pixel p has its own kernel, used once per example, so its
  gradient is the outer product g_p u_p^T of the pixel's output gradient and
  input patch: ||.||^2 = ||u_p||^2 ||g_p||^2, summed over pixels. Its bias is
  per output entry: ||g||^2.

  Args:
    x: [B, *spatial, C_in] layer input.
    g: [B, *out_spatial, C_out] gradient at the layer output.
    spec: the geometry (groups 1).

  Returns:
    [B] squared norms.
  """
  b = x.shape[0]
  nsp = len(spec.kernel_size)
  xf = acc(x).reshape((-1,) + x.shape[x.ndim - nsp - 1:])
  gg = acc(g).reshape(b, -1, g.shape[-1])
  u = sum(jnp.sum(s * s, axis=-1) for s in shifted_inputs(xf, spec))
  out = jnp.sum(u.reshape(b, -1) * jnp.sum(gg * gg, axis=-1), axis=1)
  if spec.use_bias:
    out = out + jnp.sum(gg * gg, axis=(1, 2))
  return out


# --- normalisation layers --------------------------------------------------


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
  g = acc(g)
  axes = tuple(a for a in range(1, g.ndim) if a not in feature_axes)
  out = jnp.zeros(g.shape[0], g.dtype)
  if use_scale:
    gs = jnp.sum(g * acc(x_hat), axis=axes)
    out = out + jnp.sum(gs.reshape(g.shape[0], -1) ** 2, axis=1)
  if use_bias:
    gb = jnp.sum(g, axis=axes)
    out = out + jnp.sum(gb.reshape(g.shape[0], -1) ** 2, axis=1)
  return out
