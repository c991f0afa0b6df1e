"""Intercepting Flax Linen layers to emit per-example norms inside the backward.

Every call of a module that owns parameters is wrapped (via
`nn.intercept_methods`, no change to the model code) as

    y = layer(x);  y = tap(y, stop_gradient(residuals), aux[path])

where `tap` is the identity in the forward and, in the backward, passes the
output gradient g through unchanged and returns the layer's per-example
squared parameter-gradient norms [B] as the cotangent of the zero vector
`aux[path]`. Differentiating the summed loss with respect to `aux` alone thus
gives every layer's norms from one forward and one backward to the
activations: no weight gradient is formed, and each layer's (x, g) pair is
reduced as soon as g exists (the PAX "ghostnorm" pattern, here for conv and
norm layers too).

Rules by module type (`make_rule`): nn.Dense, nn.Conv, the affine norms
(BatchNorm in inference mode, LayerNorm, GroupNorm, RMSNorm, InstanceNorm)
and, for any other module owning parameters directly, a generic exact
fallback: a per-example VJP of that module's own method (vmapped over the
batch), which materialises that layer's per-example gradient only.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
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
    kind: dense | conv | norm | fallback (reported in the plan).
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


def _dense_rule(module, args, kwargs, y, own, branch_rule):
  x = args[0] if args else kwargs["inputs"]
  use_bias = "bias" in own
  t = max(1, x.size // (x.shape[0] * x.shape[-1]))
  branch = ("outer" if t == 1 else layer_rules.choose_branch(
      t, x.shape[-1], y.shape[-1], branch_rule))
  return Rule(
      "dense", tuple(own),
      lambda res, g: layer_rules.dense_sq_norms(res, g, use_bias=use_bias,
                                                rule=branch_rule),
      x, dict(branch=branch, T=t, D=x.shape[-1], C=y.shape[-1]))


def _conv_spec(module: nn.Conv, use_bias: bool) -> layer_rules.ConvSpec:
  ks = ((module.kernel_size,) if isinstance(module.kernel_size, int)
        else tuple(module.kernel_size))

  def bc(v):
    v = 1 if v is None else v
    return (v,) * len(ks) if isinstance(v, int) else tuple(v)
  padding = nn.linear.canonicalize_padding(module.padding, len(ks))
  pre_pad = None
  if padding in ("CIRCULAR", "REFLECT", "CAUSAL"):
    pre_pad = {"CIRCULAR": "wrap", "REFLECT": "reflect",
               "CAUSAL": "causal"}[padding]
    padding = "VALID"
  elif not isinstance(padding, str):
    padding = tuple(tuple(int(p) for p in pair) for pair in padding)
  return layer_rules.ConvSpec(
      kernel_size=ks, strides=bc(module.strides), padding=padding,
      input_dilation=bc(module.input_dilation),
      kernel_dilation=bc(module.kernel_dilation),
      groups=module.feature_group_count, use_bias=use_bias, pre_pad=pre_pad)


def _conv_rule(module, args, kwargs, y, own, branch_rule):
  x = args[0] if args else kwargs["inputs"]
  spec = _conv_spec(module, "bias" in own)
  branch, t, d, c = layer_rules.conv_branch(x.shape, y.shape, spec, branch_rule)
  return Rule(
      "conv", tuple(own),
      lambda res, g: layer_rules.conv_sq_norms(res, g, spec, branch_rule),
      x, dict(branch=branch, T=t, D=d, C=c, groups=spec.groups))


def _feature_axes(module, ndim: int) -> tuple[int, ...]:
  if isinstance(module, nn.BatchNorm):
    axes = module.axis
  elif isinstance(module, nn.GroupNorm):
    axes = -1
  else:
    axes = module.feature_axes
  axes = (axes,) if isinstance(axes, int) else tuple(axes)
  return tuple(sorted(a % ndim for a in axes))


def _norm_rule(module, method, args, kwargs, y, own):
  path = path_key(module.path)
  if isinstance(module, nn.BatchNorm):
    running = nn.merge_param("use_running_average", module.use_running_average,
                             kwargs.get("use_running_average"))
    if not running:
      raise ValueError(
          f"BatchNorm at '{path}' runs in training mode (batch statistics): "
          "per-example gradients are only defined with running averages; "
          "call the model with train=False / use_running_average=True")
  if getattr(module, "axis_name", None) is not None:
    raise ValueError(f"{type(module).__name__} at '{path}' reduces over the "
                     f"device axis {module.axis_name!r}; examples are not "
                     "independent, per-example norms are undefined")
  x = args[0] if args else kwargs["x"]
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


def _fallback_rule(module, method, args, kwargs, y, own):
  """Exact for any per-example module: vmap over examples of the layer VJP."""
  apply = _reapply(module, method)
  arrays, rebuild = _split_static((args, kwargs))
  variables = dict(module.variables)
  batch = jax.tree.leaves(y)[0].shape[0]
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
      return sum(jnp.sum(layer_rules._acc(v) ** 2) for v in jax.tree.leaves(gp))
    return jax.vmap(one, in_axes=(in_axes, 0))(arr, g)
  return Rule("fallback", tuple(own), fn, (arrays, variables),
              dict(branch="vmap-vjp", type=type(module).__name__))


def make_rule(module: nn.Module, method: str, args, kwargs, y,
              branch_rule: str, allow_fallback: bool) -> Rule:
  """Picks the rule for one call of a module owning parameters."""
  own = own_params(module)
  names = set(own)
  has_children = len(own) != len(module.variables.get("params", {}))
  if method == "__call__" and not has_children:
    if (type(module) is nn.Dense and names <= {"kernel", "bias"}
        and module.dot_general is None and module.dot_general_cls is None):
      return _dense_rule(module, args, kwargs, y, own, branch_rule)
    if (type(module) is nn.Conv and names <= {"kernel", "bias"}
        and module.mask is None and module.conv_general_dilated is None
        and module.conv_general_dilated_cls is None):
      return _conv_rule(module, args, kwargs, y, own, branch_rule)
    if type(module) in _NORM_TYPES and names <= {"scale", "bias"}:
      return _norm_rule(module, method, args, kwargs, y, own)
  if not allow_fallback:
    raise ValueError(
        f"module '{path_key(module.path)}' ({type(module).__name__}.{method}) "
        f"owns parameters {sorted(names)} that no exact rule covers; pass "
        "allow_fallback=True (exact per-example VJP of that layer) or use "
        "method='vmap'")
  return _fallback_rule(module, method, args, kwargs, y, own)


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
  """

  def __init__(self, aux=None, only=None, branch_rule="time",
               allow_fallback=True):
    self.aux = aux
    self.only = only
    self.branch_rule = branch_rule
    self.allow_fallback = allow_fallback
    self.records: dict[str, Record] = {}
    self._active: set[tuple[str, ...]] = set()

  def __call__(self, next_fun, args, kwargs, context):
    module = context.module
    if (interception_disabled() or context.method_name == "setup"
        or module.path in self._active or not own_params(module)):
      return next_fun(*args, **kwargs)
    self._active.add(module.path)
    try:
      y = next_fun(*args, **kwargs)
    finally:
      self._active.discard(module.path)
    key = path_key(module.path)
    if self.only is not None and key not in self.only:
      return y
    rule = make_rule(module, context.method_name, args, kwargs, y,
                     self.branch_rule, self.allow_fallback)
    if key in self.records:
      self.records[key].calls += 1
    else:
      self.records[key] = Record(module.path, type(module).__name__, rule.kind,
                                 rule.leaves, rule.info)
    if self.aux is None:
      return y
    res = jax.tree.map(lax.stop_gradient, rule.residuals)
    return _make_tap(rule)(y, res, self.aux[key])
