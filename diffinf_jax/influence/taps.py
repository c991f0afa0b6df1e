"""Intercepting Flax Linen layers to emit per-example norms inside the backward.

Every call of a module that owns parameters is wrapped (via
`nn.intercept_methods`, no change to the model code) as

    y = layer(x);  y = tap(y, stop_gradient(residuals), aux[path])

where `tap` is the identity in the forward and, in the backward, passes the
output gradient g through unchanged and returns the layer's per-example
squared parameter-gradient norms [B] as the cotangent of the zero vector
`aux[path]`. Differentiating the summed loss with respect to `aux` alone thus
gives every layer's norms from one forward and one backward to the
activations, and each layer's (x, g) pair is reduced as soon as g exists (the
PAX "ghostnorm" pattern, here for conv, embedding and norm layers too).

Rules (`RULES`, matched by isinstance, so subclasses are covered): nn.Dense,
nn.DenseGeneral, nn.Einsum, nn.Embed (lookup and `attend`), nn.Conv,
nn.ConvLocal, nn.ConvTranspose and the affine norms (BatchNorm in inference
mode, LayerNorm, GroupNorm, RMSNorm, InstanceNorm). A rule applies to the call
that runs the covered class's own implementation: a subclass that overrides
`__call__` and calls `super().__call__` is tapped at that inner call. Any
other call of a module owning parameters gets the generic exact fallback: a
per-example VJP of that module's method with respect to its own parameters
(vmapped over the batch), which materialises that layer's per-example
gradient only. `RULE_TABLE` lists what is exact-fast, exact-fallback or
refused; docs/influence_api.md explains each.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from diffinf_jax.influence import layer_rules

_NORM_TYPES = (nn.BatchNorm, nn.LayerNorm, nn.GroupNorm, nn.RMSNorm,
               nn.InstanceNorm)
_LOCAL = threading.local()  # Set while a fallback re-applies a module.


def path_key(path: tuple[str, ...]) -> str:
  return "/".join(path)


def own_params(module: nn.Module) -> dict[str, jax.Array]:
  """The parameter leaves a module owns directly (not its children's)."""
  params = module.variables.get("params", {})
  return {k: v for k, v in params.items() if not hasattr(v, "items")}


@dataclasses.dataclass(eq=False)
class Rule:
  """How one layer call turns (residuals, output gradient) into [B] norms.

  Attributes:
    kind: the rule (dense | einsum | embed | conv | conv_local | norm |
      fallback), reported in the plan.
    leaves: the parameter leaf names the rule accounts for.
    fn: (residuals, g) -> [B] squared norms.
    residuals: arrays the backward needs (taken from the call's inputs).
    info: shapes and the ghost/materialise branch, for reports.
  """
  kind: str
  leaves: tuple[str, ...]
  fn: Callable[[Any, Any], jax.Array]
  residuals: Any
  info: dict


def _split_static(tree: Any) -> tuple[list, Callable[[list], Any]]:
  """Array leaves of (args, kwargs) and a function putting them back."""
  leaves, treedef = jax.tree.flatten(tree)
  is_arr = [isinstance(x, (jax.Array, jnp.ndarray)) or hasattr(x, "dtype")
            for x in leaves]
  arrays = [x for x, a in zip(leaves, is_arr) if a]

  def rebuild(new_arrays):
    it = iter(new_arrays)
    return jax.tree.unflatten(
        treedef, [next(it) if a else x for x, a in zip(leaves, is_arr)])
  return arrays, rebuild


def _reapply(module: nn.Module, method: str):
  """A pure function (variables, args, kwargs) -> output of `module.method`."""
  unbound = module.clone(parent=None)

  def apply(variables, args, kwargs):
    _LOCAL.off = getattr(_LOCAL, "off", 0) + 1
    try:
      return unbound.apply(variables, *args, method=method, **kwargs)
    finally:
      _LOCAL.off -= 1
  return apply


def interception_disabled() -> bool:
  return getattr(_LOCAL, "off", 0) > 0


def _input(args, kwargs, name="inputs"):
  return args[0] if args else kwargs[name]


def _tuple(v, n: int) -> tuple[int, ...]:
  v = 1 if v is None else v
  return (v,) * n if isinstance(v, int) else tuple(v)


def _custom_matmul(module) -> bool:
  """A user-supplied dot_general (quantisation...) has no exact rule."""
  return (getattr(module, "dot_general", None) is not None
          or getattr(module, "dot_general_cls", None) is not None)


# --- rule builders: (module, method, args, kwargs, y, own, branch_rule) ->
# --- Rule, or None to leave the call to the exact fallback. ------------------


def _matmul_rule(kind, spec, x, own, branch_rule):
  branch, t, d, c, grp = layer_rules.einsum_branch(x.shape, spec, branch_rule)
  return Rule(
      kind, tuple(own),
      lambda res, g: layer_rules.einsum_sq_norms(res, g, spec, branch_rule),
      x, dict(branch=branch, T=t, D=d, C=c, groups=grp))


def _dense_rule(module, method, args, kwargs, y, own, branch_rule):
  if _custom_matmul(module):
    return None
  x = _input(args, kwargs)
  spec = layer_rules.dense_spec(x.ndim, own["kernel"].shape, "bias" in own)
  return _matmul_rule("dense", spec, x, own, branch_rule)


def _dense_general_rule(module, method, args, kwargs, y, own, branch_rule):
  if _custom_matmul(module):
    return None
  x = _input(args, kwargs)
  if tuple(module.batch_dims):
    raise ValueError(
        f"DenseGeneral at '{path_key(module.path)}' has batch_dims="
        f"{tuple(module.batch_dims)}: its kernel has a slice per example of "
        "the leading axis, so examples do not share parameters; per-example "
        "norms are refused. Drop batch_dims or use method='vmap'")
  axis = tuple(a % x.ndim for a in _tuple(module.axis, 1))
  if 0 in axis:
    raise ValueError(
        f"DenseGeneral at '{path_key(module.path)}' contracts the batch axis "
        "0: it mixes the examples of a batch, so per-example gradients are "
        "undefined")
  spec = layer_rules.dense_general_spec(x.ndim, axis, own["kernel"].shape,
                                        "bias" in own)
  return _matmul_rule("einsum", spec, x, own, branch_rule)


def _einsum_rule(module, method, args, kwargs, y, own, branch_rule):
  x = _input(args, kwargs)
  equation = module.einsum_str or (args[1] if len(args) > 1
                                   else kwargs.get("einsum_str"))
  try:
    spec = layer_rules.einsum_spec(equation, x.shape, own["kernel"].shape,
                                   "bias" in own)
  except ValueError:
    return None  # A diagonal or a kernel-mixed example axis: fallback.
  return _matmul_rule("einsum", spec, x, own, branch_rule)


def _embed_rule(module, method, args, kwargs, y, own, branch_rule):
  ids = _input(args, kwargs)
  table = own["embedding"]
  t = max(1, ids.size // ids.shape[0]) if ids.ndim else 1
  branch = layer_rules.embed_branch(t, table.shape[-1], branch_rule)
  return Rule(
      "embed", tuple(own),
      lambda res, g: layer_rules.embed_sq_norms(res, g, table.shape[0],
                                                branch_rule),
      ids, dict(branch=branch, T=t, D=table.shape[0], C=table.shape[-1]))


def _attend_rule(module, method, args, kwargs, y, own, branch_rule):
  x = _input(args, kwargs, "query")
  spec = layer_rules.attend_spec(x.ndim, own["embedding"].shape)
  return _matmul_rule("einsum", spec, x, own, branch_rule)


def _conv_spec(module, use_bias: bool) -> layer_rules.ConvSpec:
  ks = _tuple(module.kernel_size, 1)
  n = len(ks)
  padding = nn.linear.canonicalize_padding(module.padding, n)
  pre_pad = None
  if padding in ("CIRCULAR", "REFLECT", "CAUSAL"):
    pre_pad = {"CIRCULAR": "wrap", "REFLECT": "reflect",
               "CAUSAL": "causal"}[padding]
    padding = "VALID"
  elif not isinstance(padding, str):
    padding = tuple(tuple(int(p) for p in pair) for pair in padding)
  return layer_rules.ConvSpec(
      kernel_size=ks, strides=_tuple(module.strides, n), padding=padding,
      input_dilation=_tuple(module.input_dilation, n),
      kernel_dilation=_tuple(module.kernel_dilation, n),
      groups=module.feature_group_count, use_bias=use_bias, pre_pad=pre_pad)


def _conv_rule(module, method, args, kwargs, y, own, branch_rule):
  if (module.mask is not None or module.conv_general_dilated is not None
      or module.conv_general_dilated_cls is not None):
    return None
  x = _input(args, kwargs)
  spec = _conv_spec(module, "bias" in own)
  if not module.shared_weights:
    if x.ndim != len(spec.kernel_size) + 2:
      return None  # Extra batch axes share each pixel's kernel: fallback.
    return Rule("conv_local", tuple(own),
                lambda res, g: layer_rules.conv_local_sq_norms(res, g, spec),
                x, dict(branch="outer"))
  branch, t, d, c = layer_rules.conv_branch(x.shape, y.shape, spec,
                                            branch_rule)
  return Rule(
      "conv", tuple(own),
      lambda res, g: layer_rules.conv_sq_norms(res, g, spec, branch_rule),
      x, dict(branch=branch, T=t, D=d, C=c, groups=spec.groups))


def _conv_transpose_geometry(module, x_shape, cin: int):
  """(ConvSpec of the equivalent dilated conv, VALID output spatial shape).

  Read off the convolution that lax.conv_transpose itself emits, so that
  padding conventions can never drift from JAX's.
  """
  ks = _tuple(module.kernel_size, 1)
  n = len(ks)
  strides = _tuple(module.strides, n)
  dil = _tuple(module.kernel_dilation, n)
  padding = nn.linear.canonicalize_padding(module.padding, n)
  if padding == "CIRCULAR":
    padding = "VALID"
  kshape = ks + ((module.features, cin) if module.transpose_kernel
                 else (cin, module.features))
  xs = jax.ShapeDtypeStruct((1,) + tuple(x_shape[-n - 1:]), jnp.float32)
  ksd = jax.ShapeDtypeStruct(kshape, jnp.float32)
  fn = lambda a, k: lax.conv_transpose(
      a, k, strides, padding, rhs_dilation=dil,
      transpose_kernel=module.transpose_kernel)
  jaxpr = jax.make_jaxpr(fn)(xs, ksd)
  eqn = next(e for e in jaxpr.eqns
             if e.primitive.name == "conv_general_dilated")
  p = eqn.params
  spec = layer_rules.ConvSpec(
      kernel_size=ks, strides=tuple(p["window_strides"]),
      padding=tuple(tuple(int(v) for v in pair) for pair in p["padding"]),
      input_dilation=tuple(p["lhs_dilation"]),
      kernel_dilation=tuple(p["rhs_dilation"]), groups=1, use_bias=False)
  return spec, tuple(jaxpr.out_avals[0].shape[1:-1])


def _conv_transpose_rule(module, method, args, kwargs, y, own, branch_rule):
  if module.mask is not None:
    return None
  x = _input(args, kwargs)
  n = len(_tuple(module.kernel_size, 1))
  spec, pre_shape = _conv_transpose_geometry(module, x.shape, x.shape[-1])
  spec = dataclasses.replace(spec, use_bias="bias" in own)
  circular = module.padding == "CIRCULAR"
  strides = _tuple(module.strides, n)
  periods = tuple(d * s for d, s in zip(x.shape[-n - 1:-1], strides))
  # Flax pads the VALID output to whole periods (the extra element on the
  # left unless the kernel is transposed) and sums the periods.
  diffs = [-(p - q) % (2 * q) for p, q in zip(pre_shape, periods)]
  lo = [d // 2 if module.transpose_kernel else (d + 1) // 2 for d in diffs]

  def fn(res, g):
    if not circular:
      return layer_rules.conv_sq_norms(res, g, spec, branch_rule)
    # The bias is added after the periodic sum: its gradient sums the
    # layer's own output gradient, the kernel's the unwrapped one.
    lead = g.shape[:-n - 1]
    gf = g.reshape((-1,) + g.shape[-n - 1:])
    gf = layer_rules.circular_transpose_grad(gf, pre_shape, periods, lo)
    g_pre = gf.reshape(lead + gf.shape[1:])
    out = layer_rules.conv_sq_norms(
        res, g_pre, dataclasses.replace(spec, use_bias=False), branch_rule)
    if spec.use_bias:
      gb = jnp.sum(layer_rules.acc(g).reshape(g.shape[0], -1, g.shape[-1]),
                   axis=1)
      out = out + jnp.sum(gb * gb, axis=1)
    return out
  branch, t, d, c = layer_rules.conv_branch(
      x.shape, (1, *pre_shape, y.shape[-1]), spec, branch_rule)
  return Rule("conv", tuple(own), fn, x,
              dict(branch=branch, T=t, D=d, C=c, groups=1,
                   transpose=True))


def _feature_axes(module, ndim: int) -> tuple[int, ...]:
  if isinstance(module, nn.BatchNorm):
    axes = module.axis
  elif isinstance(module, nn.GroupNorm):
    axes = -1
  else:
    axes = module.feature_axes
  axes = (axes,) if isinstance(axes, int) else tuple(axes)
  return tuple(sorted(a % ndim for a in axes))


def check_norm_call(module, args, kwargs) -> None:
  """Raises before a norm layer runs if its per-example norms are undefined.

  Runs before the layer itself: a BatchNorm in training mode would otherwise
  fail inside Flax (immutable batch_stats) with an unrelated message.
  """
  path = path_key(module.path)
  name = type(module).__name__
  if isinstance(module, nn.BatchNorm):
    try:
      running = nn.merge_param(
          "use_running_average", module.use_running_average,
          kwargs.get("use_running_average",
                     args[1] if len(args) > 1 else None))
    except ValueError:
      running = None
    if not running:
      raise ValueError(
          f"{name} at '{path}' normalises with batch statistics "
          "(use_running_average is False or unset): every example's output "
          "depends on the whole batch, so per-example gradients are "
          "undefined. Build it with use_running_average=not train and call "
          "the model in inference mode (apply_kwargs={'train': False}), or "
          "pass use_running_average=True to the call")
  if getattr(module, "axis_name", None) is not None:
    raise ValueError(f"{name} at '{path}' reduces over the device axis "
                     f"{module.axis_name!r}; examples are not independent, "
                     "per-example norms are undefined")


def _norm_rule(module, method, args, kwargs, y, own, branch_rule):
  del branch_rule
  if not set(own) <= {"scale", "bias"}:
    return None
  path = path_key(module.path)
  x = _input(args, kwargs, "x")
  feat = _feature_axes(module, x.ndim)
  if 0 in feat:
    raise ValueError(f"{type(module).__name__} at '{path}' has parameters "
                     "along the batch axis; per-example norms are undefined")
  apply = _reapply(module, method)
  arrays, rebuild = _split_static((args, kwargs))
  others = {k: v for k, v in module.variables.items() if k != "params"}
  unit = {k: (jnp.ones_like(v) if k == "scale" else jnp.zeros_like(v))
          for k, v in own.items()}

  def fn(res, g):
    arr, oth = res
    a, kw = rebuild(arr)
    # The layer with scale 1 and bias 0 returns x_hat in its own numerics.
    x_hat = apply({"params": unit, **oth}, a, kw)
    return layer_rules.affine_norm_sq_norms(
        x_hat, g, feat, use_scale="scale" in own, use_bias="bias" in own)
  return Rule("norm", tuple(own), fn, (arrays, others),
              dict(branch="affine", type=type(module).__name__))


def _fallback_rule(module, method, args, kwargs, y, own, batch: int,
                   reruns_children: bool):
  """Exact for any per-example module: vmap over examples of the layer VJP."""
  apply = _reapply(module, method)
  arrays, rebuild = _split_static((args, kwargs))
  variables = dict(module.variables)
  in_axes = [0 if (a.ndim and a.shape[0] == batch) else None for a in arrays]

  def fn(res, g):
    arr, var = res

    def one(arr_n, g_n):
      arr_b = [a[None] if ax == 0 else a for a, ax in zip(arr_n, in_axes)]
      a, kw = rebuild(arr_b)

      def f(p):
        params = dict(var["params"]); params.update(p)
        return apply({**var, "params": params}, a, kw)
      p_own = {k: var["params"][k] for k in own}
      _, vjp = jax.vjp(f, p_own)
      (gp,) = vjp(jax.tree.map(lambda t: t[None], g_n))
      return sum(jnp.sum(layer_rules.acc(v) ** 2) for v in jax.tree.leaves(gp))
    return jax.vmap(one, in_axes=(in_axes, 0))(arr, g)
  info = dict(branch="vmap-vjp", type=type(module).__name__)
  if reruns_children:
    info["warning"] = (
        "re-runs the whole module, children included, once per example in "
        "the backward (slow); move its own parameters into a small "
        "submodule")
  return Rule("fallback", tuple(own), fn, (arrays, variables), info)


def _impl(cls, method: str):
  """The function Flax runs for `cls.method` (its wrapper's __wrapped__)."""
  fn = getattr(cls, method)
  return getattr(fn, "__wrapped__", fn)


# (covered class, method, builder, pre-check). The builder applies only when
# the call runs that class's own implementation of the method.
RULES = (
    (nn.Dense, "__call__", _dense_rule, None),
    (nn.DenseGeneral, "__call__", _dense_general_rule, None),
    (nn.Einsum, "__call__", _einsum_rule, None),
    (nn.Embed, "__call__", _embed_rule, None),
    (nn.Embed, "attend", _attend_rule, None),
    (nn.linear._Conv, "__call__", _conv_rule, None),
    (nn.ConvTranspose, "__call__", _conv_transpose_rule, None),
) + tuple((t, "__call__", _norm_rule, check_norm_call) for t in _NORM_TYPES)

# What docs/influence_api.md's rule table says, kept next to the code.
RULE_TABLE = (
    ("nn.Dense", "exact-fast", "Goodfellow ||a||^2 ||g||^2, or ghost / "
     "materialise over positions"),
    ("nn.DenseGeneral (any contracting axes)", "exact-fast",
     "einsum rule: positions x (contracted, features)"),
    ("nn.Einsum", "exact-fast", "einsum rule (groups = axes shared by input, "
     "kernel and output); diagonals: exact-fallback"),
    ("nn.MultiHeadDotProductAttention / SelfAttention", "exact-fast",
     "its query/key/value/out DenseGeneral projections (and QK norms)"),
    ("nn.Embed", "exact-fast", "scatter of g into the used rows: id-equality "
     "Gram or sorted segment sums; `attend` = einsum rule"),
    ("nn.Conv (any padding, stride, dilation, groups)", "exact-fast",
     "ghost Gram or per-example G^T U by kernel offset"),
    ("nn.ConvTranspose (incl. CIRCULAR)", "exact-fast",
     "the conv with input dilation = strides"),
    ("nn.ConvLocal", "exact-fast", "sum over pixels ||u_p||^2 ||g_p||^2"),
    ("nn.BatchNorm (inference) / LayerNorm / GroupNorm / RMSNorm / "
     "InstanceNorm", "exact-fast", "sums of g * x_hat and g"),
    ("subclasses of the above", "exact-fast", "same rule; an overriding "
     "__call__ is tapped at its super().__call__"),
    ("nn.Dense/DenseGeneral with custom dot_general, masked Conv, Einsum "
     "with diagonals", "exact-fallback", "per-example VJP of the layer"),
    ("any other module owning parameters", "exact-fallback",
     "per-example VJP of the module's method w.r.t. its own parameters"),
    ("a module called twice (shared / tied weights)", "refused",
     "norms are not additive over calls; use method='vmap'"),
    ("BatchNorm with batch statistics, norms with axis_name", "refused",
     "examples are not independent"),
    ("DenseGeneral with batch_dims or contracting axis 0", "refused",
     "parameters or contraction along the example axis"),
    ("a layer whose output lacks the leading example axis", "refused",
     "its gradient is summed over examples"),
)


def match_rule(module, method: str, orig_method) -> tuple[Callable, Any] | None:
  """(builder, pre-check) if this call runs a covered implementation."""
  impl = getattr(orig_method, "func", orig_method)
  for cls, name, builder, check in RULES:
    if (isinstance(module, cls) and method == name
        and impl is _impl(cls, name)):
      return builder, check
  return None


def _make_tap(rule: Rule):
  @jax.custom_vjp
  def tap(y, res, aux):
    del res, aux
    return y

  def fwd(y, res, aux):
    del aux
    return y, res

  def bwd(res, g):
    contrib = rule.fn(res, g)
    # The barrier makes the rest of the backward wait for this layer's norm,
    # so (x, g) and the layer's temporaries die here instead of every layer's
    # pair staying alive until the end of the backward pass.
    g, contrib = lax.optimization_barrier((g, contrib))
    return g, jax.tree.map(jnp.zeros_like, res), contrib
  tap.defvjp(fwd, bwd)
  return tap


@dataclasses.dataclass
class Record:
  """One tapped layer: where, which rule, which leaves."""
  path: tuple[str, ...]
  type: str
  kind: str
  leaves: tuple[str, ...]
  info: dict
  calls: int = 1


class Tracker:
  """Interceptor state for one traced apply: discovery or tapping.

  Args:
    aux: None while discovering layers, else {path_key: [B] zeros} whose
      cotangents become the per-layer norms.
    only: restrict taps to these path keys (last-layer method), or None.
    branch_rule: conv/dense ghost-vs-materialise rule.
    allow_fallback: allow the generic per-example VJP rule.
    batch_size: B, the leading axis every tapped layer's output must have.
  """

  def __init__(self, aux=None, only=None,
               branch_rule=layer_rules.DEFAULT_BRANCH_RULE,
               allow_fallback=True, batch_size: int | None = None):
    self.aux = aux
    self.only = only
    self.branch_rule = branch_rule
    self.allow_fallback = allow_fallback
    self.batch_size = batch_size
    self.records: dict[str, Record] = {}
    # Open calls by module path: the leaves already tapped by a nested call
    # of the same module (a subclass's super().__call__).
    self._open: dict[tuple[str, ...], set[str]] = {}

  def __call__(self, next_fun, args, kwargs, context):
    module = context.module
    if (interception_disabled() or context.method_name == "setup"
        or not own_params(module)):
      return next_fun(*args, **kwargs)
    key = path_key(module.path)
    if self.only is not None and key not in self.only:
      return next_fun(*args, **kwargs)
    match = match_rule(module, context.method_name, context.orig_method)
    nested = module.path in self._open
    if nested and match is None:
      return next_fun(*args, **kwargs)  # Helper method inside an open call.
    if nested:
      return self._covered(module, context, match, args, kwargs, next_fun)
    self._open[module.path] = set()
    try:
      if match is not None:
        return self._covered(module, context, match, args, kwargs, next_fun)
      y = next_fun(*args, **kwargs)
      left = {k: v for k, v in own_params(module).items()
              if k not in self._open[module.path]}
      if not left:
        return y  # A nested covered call (super().__call__) tapped it all.
      if not self.allow_fallback:
        raise ValueError(
            f"module '{key}' ({type(module).__name__}.{context.method_name})"
            f" owns parameters {sorted(left)} that no exact rule covers; "
            "pass allow_fallback=True (exact per-example VJP of that layer) "
            "or use method='vmap'")
      has_children = len(own_params(module)) != len(
          module.variables.get("params", {}))
      rule = _fallback_rule(module, context.method_name, args, kwargs, y,
                            left, self._batch(y), has_children)
      return self._attach(module, rule, y)
    finally:
      del self._open[module.path]

  def _batch(self, y) -> int:
    return (self.batch_size if self.batch_size is not None
            else jax.tree.leaves(y)[0].shape[0])

  def _covered(self, module, context, match, args, kwargs, next_fun):
    builder, check = match
    if check is not None:
      check(module, args, kwargs)
    y = next_fun(*args, **kwargs)
    own = own_params(module)
    rule = builder(module, context.method_name, args, kwargs, y, own,
                   self.branch_rule)
    if rule is None:
      if not self.allow_fallback:
        raise ValueError(
            f"module '{path_key(module.path)}' ({type(module).__name__}) is "
            "configured in a way its exact rule does not cover (custom "
            "dot_general, kernel mask, einsum diagonal); pass "
            "allow_fallback=True or use method='vmap'")
      rule = _fallback_rule(module, context.method_name, args, kwargs, y,
                            own, self._batch(y), False)
    self._open.setdefault(module.path, set()).update(rule.leaves)
    return self._attach(module, rule, y)

  def _check_batch_axis(self, module, y) -> None:
    b = self.batch_size
    if b is None:
      return
    bad = [tuple(v.shape) for v in jax.tree.leaves(y)
           if hasattr(v, "shape") and (not v.shape or v.shape[0] != b)]
    if bad:
      raise ValueError(
          f"module '{path_key(module.path)}' ({type(module).__name__}) "
          f"returns {bad[0]} for a batch of {b}: its output lacks the leading "
          "example axis (e.g. a position embedding looked up once and "
          "broadcast over the batch), so the gradient reaching it is summed "
          "over examples and per-example norms of its parameters cannot be "
          "separated. Give it inputs with the batch axis (e.g. "
          "jnp.broadcast_to(positions, (B, T))) or add the parameter in a "
          "module that receives the batch")

  def _attach(self, module, rule: Rule, y):
    self._check_batch_axis(module, y)
    key = path_key(module.path)
    if key in self.records:
      self.records[key].calls += 1
    else:
      self.records[key] = Record(module.path, type(module).__name__, rule.kind,
                                 rule.leaves, rule.info)
    if self.aux is None:
      return y
    res = jax.tree.map(lax.stop_gradient, rule.residuals)
    return _make_tap(rule)(y, res, self.aux[key])


def batch_size_of(x) -> int:
  """Leading axis of the first array leaf (the model input's example axis)."""
  leaves = [v for v in jax.tree.leaves(x) if np.ndim(v)]
  if not leaves:
    raise ValueError("the model input has no array with a batch axis")
  return int(np.shape(leaves[0])[0])
