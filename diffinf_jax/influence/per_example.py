"""Per-example squared gradient norms over all parameters of a Flax Linen model.

    fn = make_sq_norm_fn(model, method="exact")
    sq = fn(variables, batch)        # [B] float, ||d loss_n / d params||^2

`batch` holds `image` [B, ...] (the model input), `label` [B] int and an
optional `mask` [B] bool (False = padding: those rows are exactly 0).

Methods:
  exact       one forward and one backward to the layer outputs; each layer's
              norm is reduced inside the backward from its input and output
              gradient (Dense: ||a||^2 ||g||^2; Conv: ghost Gram form or
              per-example G^T U from patches, whichever is cheaper for that
              layer's shapes; affine norm layers: sums of g * x_hat and g).
              Weight gradients are never computed. See `taps.py`.
  vmap        jit(vmap(grad)) over chunks of `vmap_chunk` examples, run one
              chunk after another: the reference that materialises
              per-example gradients.
  last_layer  the final nn.Dense only (TracInCP-fast style approximation).

BatchNorm must run in inference mode (running statistics): it is the only
setting in which the examples of a batch are independent, so the only one in
which per-example gradients (and these norms) are exact and well defined. The
model is applied with `train=False` by default and a BatchNorm in training
mode raises. Every parameter leaf is accounted for: a leaf no rule covers
raises a ValueError naming it; never a silent zero.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from diffinf_jax.influence import taps

METHODS = ("exact", "vmap", "last_layer")
LossFn = Callable[[Any, dict], jax.Array]


def softmax_xent(outputs: Any, batch: dict) -> jax.Array:
  """Per-example cross-entropy on the assigned label.

  Args:
    outputs: logits [B, K], or a tuple whose first element is the logits
      (the classifier returns (logits, aux)).
    batch: with `label` [B] int.

  Returns:
    [B] losses (nats).
  """
  logits = outputs[0] if isinstance(outputs, (tuple, list)) else outputs
  return optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])


def _float_dtype(variables) -> jnp.dtype:
  leaves = [x for x in jax.tree.leaves(variables)
            if jnp.issubdtype(x.dtype, jnp.floating)]
  dt = functools.reduce(jnp.promote_types, [x.dtype for x in leaves],
                        jnp.float32)
  return jnp.dtype(dt)


def _masked_sum(losses: jax.Array, batch: dict) -> jax.Array:
  """Sum (not mean: a mean would scale every norm by 1/B^2) over real rows."""
  mask = batch.get("mask")
  if mask is not None:
    losses = jnp.where(mask, losses, 0.0)  # where: padding gets g == 0 exactly
  return jnp.sum(losses)


def _apply(model, variables, batch, input_key, apply_kwargs):
  return model.apply(variables, batch[input_key], **apply_kwargs)


def discover(model: nn.Module, variables, batch: dict, *,
             input_key: str = "image", apply_kwargs: dict | None = None,
             branch_rule: str = "time", allow_fallback: bool = True
             ) -> dict[str, taps.Record]:
  """Traces the model once (no compute) and lists the layers owning params.

  Returns:
    {module path key: Record(type, rule kind, leaves, branch info)} in call
    order.

  Raises:
    ValueError: a parameter leaf no tapped call covers, a module applied more
      than once (shared weights: norms are not additive over its calls), or a
      layer with no rule when `allow_fallback` is False.
  """
  apply_kwargs = {"train": False} if apply_kwargs is None else apply_kwargs
  tracker = taps.Tracker(None, branch_rule=branch_rule,
                         allow_fallback=allow_fallback)

  def run(v, b):
    with nn.intercept_methods(tracker):
      return _apply(model, v, b, input_key, apply_kwargs)
  jax.eval_shape(run, variables, batch)
  records = tracker.records
  shared = [k for k, r in records.items() if r.calls > 1]
  if shared:
    raise ValueError(
        f"modules applied more than once (shared parameters): {shared}; the "
        "per-example norm of a shared weight is not a sum over its calls. "
        "Use method='vmap' for this model")
  covered = {(*r.path, leaf) for r in records.values() for leaf in r.leaves}
  flat = jax.tree_util.tree_flatten_with_path(variables["params"])[0]
  all_leaves = {tuple(str(getattr(k, "key", k)) for k in kp) for kp, _ in flat}
  missing = sorted("/".join(p) for p in all_leaves - covered)
  if missing:
    raise ValueError(
        f"parameters not reached by any intercepted layer call: {missing}. "
        "They are unused by this forward or used outside their module; "
        "per-example norms would silently miss them. Use method='vmap'")
  return records


def _exact_per_layer(model, variables, batch, loss_fn, input_key,
                     apply_kwargs, branch_rule, allow_fallback, only=None):
  records = discover(model, variables, batch, input_key=input_key,
                     apply_kwargs=apply_kwargs, branch_rule=branch_rule,
                     allow_fallback=allow_fallback)
  keys = list(records) if only is None else [k for k in records if k in only]
  b = batch[input_key].shape[0]
  dtype = _float_dtype(variables)
  aux0 = {k: jnp.zeros((b,), dtype) for k in keys}

  def total_loss(aux):
    tracker = taps.Tracker(aux, only=set(keys), branch_rule=branch_rule,
                           allow_fallback=allow_fallback)
    with nn.intercept_methods(tracker):
      out = _apply(model, variables, batch, input_key, apply_kwargs)
    return _masked_sum(loss_fn(out, batch), batch)
  return jax.grad(total_loss)(aux0)


def _vmap_per_layer(model, variables, batch, loss_fn, input_key,
                    apply_kwargs, chunk):
  params = variables["params"]
  rest = {k: v for k, v in variables.items() if k != "params"}

  def loss_one(p, ex):
    ex1 = jax.tree.map(lambda a: a[None], ex)
    out = _apply(model, {"params": p, **rest}, ex1, input_key, apply_kwargs)
    return loss_fn(out, ex1)[0]

  def one(ex):
    grads = jax.grad(loss_one)(params, ex)
    per = {}
    for kp, leaf in jax.tree_util.tree_flatten_with_path(grads)[0]:
      key = "/".join(str(getattr(k, "key", k)) for k in kp[:-1])
      sq = jnp.sum(leaf.astype(jnp.promote_types(leaf.dtype, jnp.float32)) ** 2)
      per[key] = per.get(key, 0.0) + sq
    return per
  ex = {k: v for k, v in batch.items() if k != "mask"}
  b = jax.tree.leaves(ex)[0].shape[0]
  # Chunks are unrolled, not a lax.map: XLA's CPU backend runs convolutions
  # inside a while loop ~8x slower than at top level. The barrier makes each
  # chunk wait for the previous one's result, so chunks run one after the
  # other and their per-example gradients (chunk x all parameters) can share
  # memory instead of all being alive at once.
  outs, prev = [], None
  for start in range(0, b, max(1, chunk)):
    part = jax.tree.map(lambda a: a[start:start + chunk], ex)
    if prev is not None:
      part, _ = jax.lax.optimization_barrier((part, prev))
    prev = jax.vmap(one)(part)
    outs.append(prev)
  return {k: jnp.concatenate([o[k] for o in outs]) for k in outs[0]}


def _last_dense(records: dict[str, taps.Record]) -> str:
  keys = list(records)
  if not keys or records[keys[-1]].type != "Dense":
    raise ValueError("last_layer: the last layer owning parameters is "
                     f"{keys[-1] if keys else None!r}, not an nn.Dense")
  return keys[-1]


def per_layer_sq_norms(model, variables, batch, loss_fn: LossFn = softmax_xent,
                       *, method: str = "exact", input_key: str = "image",
                       apply_kwargs: dict | None = None,
                       branch_rule: str = "time", allow_fallback: bool = True,
                       vmap_chunk: int = 16) -> dict[str, jax.Array]:
  """{module path: [B] squared norm of that module's parameter gradients}.

  Traceable (jit it, or use `make_sq_norm_fn`). Padding rows are exactly 0.
  """
  apply_kwargs = {"train": False} if apply_kwargs is None else apply_kwargs
  if method == "exact":
    per = _exact_per_layer(model, variables, batch, loss_fn, input_key,
                           apply_kwargs, branch_rule, allow_fallback)
  elif method == "last_layer":
    records = discover(model, variables, batch, input_key=input_key,
                       apply_kwargs=apply_kwargs, branch_rule=branch_rule,
                       allow_fallback=allow_fallback)
    per = _exact_per_layer(model, variables, batch, loss_fn, input_key,
                           apply_kwargs, branch_rule, allow_fallback,
                           only={_last_dense(records)})
  elif method == "vmap":
    per = _vmap_per_layer(model, variables, batch, loss_fn, input_key,
                          apply_kwargs, vmap_chunk)
  else:
    raise ValueError(f"influence method {method!r}: use one of {METHODS}")
  mask = batch.get("mask")
  if mask is not None:
    per = {k: jnp.where(mask, v, 0.0) for k, v in per.items()}
  return per


def make_sq_norm_fn(model: nn.Module, loss_fn: LossFn = softmax_xent, *,
                    method: str = "exact", input_key: str = "image",
                    apply_kwargs: dict | None = None, branch_rule: str = "time",
                    allow_fallback: bool = True, vmap_chunk: int = 16,
                    per_layer: bool = False, jit: bool = True) -> Callable:
  """A jitted fn(variables, batch) -> [B] per-example squared gradient norms.

  Args:
    model: a Flax Linen module; called as model.apply(variables,
      batch[input_key], **apply_kwargs).
    loss_fn: (outputs, batch) -> [B] per-example losses.
    method: exact | vmap | last_layer (see the module docstring).
    input_key: batch key of the model input.
    apply_kwargs: extra keyword arguments of the model call (default
      {"train": False}: BatchNorm with running statistics, no dropout).
    branch_rule: conv/dense branch rule: time | space | ghost | materialize.
    allow_fallback: exact per-example VJP for layer types without a rule
      (else they raise).
    vmap_chunk: examples whose gradients are materialised at once (vmap).
    per_layer: return {module path: [B]} instead of the total.
    jit: wrap in jax.jit.

  Returns:
    fn(variables, batch) -> [B] (float32, float64 under x64 with f64 params).
  """
  def fn(variables, batch):
    per = per_layer_sq_norms(
        model, variables, batch, loss_fn, method=method, input_key=input_key,
        apply_kwargs=apply_kwargs, branch_rule=branch_rule,
        allow_fallback=allow_fallback, vmap_chunk=vmap_chunk)
    if per_layer:
      return per
    return functools.reduce(jnp.add, per.values())
  return jax.jit(fn) if jit else fn


def per_example_sq_norms(model: nn.Module, variables, batch: dict,
                         loss_fn: LossFn = softmax_xent, *,
                         method: str = "exact", **kwargs) -> np.ndarray:
  """One-shot convenience: [B] numpy squared norms (see `make_sq_norm_fn`)."""
  fn = make_sq_norm_fn(model, loss_fn, method=method, **kwargs)
  return np.asarray(fn(variables, batch))


def describe(model: nn.Module, variables, batch: dict, **kwargs) -> list[dict]:
  """The per-layer plan of `exact`: path, type, rule, branch and shapes."""
  records = discover(model, variables, batch, **kwargs)
  return [{**r.info, "path": k, "type": r.type, "rule": r.kind,
           "leaves": list(r.leaves)} for k, r in records.items()]
