"""Per-example squared gradient norms over all parameters of a Flax Linen model.

    fn = make_sq_norm_fn(model, method="exact")
    sq = fn(variables, batch)        # [B] float, ||d loss_n / d params||^2

`batch` holds the model input under `input_key` (default `image`, [B, ...]),
whatever the loss reads (`label` [B] int for `softmax_xent`) and an optional
`mask` [B] bool (False = padding: those rows are exactly 0). The loss is
`loss_fn(outputs, batch) -> [B]`, one value per example (never a batch
mean). docs/influence_api.md states the whole contract.

Methods:
  exact       one forward and one backward to the layer outputs; each layer's
              norm is reduced inside the backward from its input and output
              gradient (Dense / DenseGeneral / Einsum: ||a||^2 ||g||^2 or the
              ghost Gram form or per-example G^T A, whichever is cheaper for
              the layer's shapes; Conv / ConvTranspose: the same over patches;
              Embed: the output gradients summed per used row; affine norm
              layers: sums of g * x_hat and g). Batch-wide weight gradients
              are never computed; a layer without an exact rule gets an
              exact fallback that does form that one layer's per-example
              weight gradients (a vmapped VJP). See `taps.py`.
  vmap        jit(vmap(grad)) over chunks of `vmap_chunk` examples, run one
              chunk after another: the reference that materialises
              per-example gradients.
  last_layer  the last Dense / DenseGeneral / Einsum layer only (TracInCP-fast
              style approximation; `last_layer=path` picks another).

BatchNorm must run in inference mode (running statistics): it is the only
setting in which the examples of a batch are independent, so the only one in
which per-example gradients (and these norms) are exact and well defined. The
model is applied in inference mode by default (`default_apply_kwargs`), and a
BatchNorm using batch statistics raises before it runs. Every parameter leaf
is accounted for: a leaf no rule covers raises a ValueError naming it; never a
silent zero.
"""

from __future__ import annotations

import collections.abc
import functools
import inspect
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from diffinf_jax.influence import layer_rules
from diffinf_jax.influence import taps

METHODS = ("exact", "vmap", "last_layer")
LossFn = Callable[[Any, dict], jax.Array]
InputKey = str | Sequence[str]
# Keyword arguments that put a model in inference mode, by the names models
# use for them (first match wins; see `default_apply_kwargs`).
INFERENCE_FLAGS = (("train", False), ("training", False),
                   ("is_training", False), ("deterministic", True))
# Layer kinds `last_layer` may pick (matmul layers, not norms or embeddings).
_LAST_LAYER_KINDS = ("dense", "einsum")


def logits_of(outputs: Any) -> jax.Array:
  """The logits of a model's output: an array, (logits, aux) or a dict.

  Raises:
    ValueError: a dict without "logits", or anything else.
  """
  if isinstance(outputs, collections.abc.Mapping):
    if "logits" not in outputs:
      raise ValueError(
          f"the model returns a dict with keys {sorted(outputs)} and no "
          "'logits'; pass loss_fn=lambda outputs, batch: ... returning one "
          "loss per example")
    return outputs["logits"]
  if isinstance(outputs, (tuple, list)):
    return logits_of(outputs[0]) if outputs else logits_of(None)
  if hasattr(outputs, "shape"):
    return outputs
  raise ValueError(f"cannot find logits in a model output of type "
                   f"{type(outputs).__name__}; pass loss_fn=...")


def softmax_xent(outputs: Any, batch: dict) -> jax.Array:
  """Per-example cross-entropy on the assigned label.

  Args:
    outputs: logits [B, K], a tuple whose first element is the logits (the
      classifier returns (logits, aux)) or a dict with "logits".
    batch: with `label` [B] int.

  Returns:
    [B] losses (nats).
  """
  return optax.softmax_cross_entropy_with_integer_labels(
      logits_of(outputs), batch["label"])


def sequence_xent(outputs: Any, batch: dict) -> jax.Array:
  """Per-example cross-entropy summed over positions (language models).

  Args:
    outputs: logits [B, T, V] (or a tuple / dict holding them, as above).
    batch: `label` [B, T] int target per position (for a language model the
      next token) and an optional `label_mask` [B, T] (0 = ignored position).

  Returns:
    [B] losses: the sum over an example's positions (nats).
  """
  per_token = optax.softmax_cross_entropy_with_integer_labels(
      logits_of(outputs), batch["label"])
  mask = batch.get("label_mask")
  if mask is not None:
    per_token = jnp.where(mask, per_token, 0.0)
  return jnp.sum(per_token.reshape(per_token.shape[0], -1), axis=1)


def default_apply_kwargs(model: nn.Module) -> dict:
  """The keyword arguments that call `model` in inference mode.

  The first of `train=False`, `training=False`, `is_training=False`,
  `deterministic=True` that the model's `__call__` names; {} when it names
  none (a model without a mode switch).
  """
  try:
    params = inspect.signature(model.__call__).parameters
  except (TypeError, ValueError):
    return {}
  kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD,
           inspect.Parameter.KEYWORD_ONLY)
  for name, value in INFERENCE_FLAGS:
    if name in params and params[name].kind in kinds:
      return {name: value}
  return {}


def _resolve_kwargs(model, apply_kwargs):
  return default_apply_kwargs(model) if apply_kwargs is None else apply_kwargs


def model_inputs(batch: dict, input_key: InputKey) -> tuple:
  """The positional model inputs: batch[input_key] (or several keys)."""
  keys = (input_key,) if isinstance(input_key, str) else tuple(input_key)
  missing = [k for k in keys if k not in batch]
  if missing:
    raise ValueError(f"the batch has no {missing} (keys {sorted(batch)}); "
                     "pass input_key= naming the model input")
  return tuple(batch[k] for k in keys)


def batch_size(batch: dict, input_key: InputKey) -> int:
  return taps.batch_size_of(model_inputs(batch, input_key))


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
  return model.apply(variables, *model_inputs(batch, input_key),
                     **apply_kwargs)


def check_losses(losses, b: int) -> None:
  """Raises unless the loss gave one value per example."""
  shape = tuple(getattr(losses, "shape", ()))
  if shape != (b,):
    raise ValueError(
        f"loss_fn returned shape {shape} for a batch of {b}: it must return "
        f"one loss per example, shape ({b},). Do not average or sum over the "
        "batch (for optax losses, skip the .mean(); for a sequence loss, "
        "reduce over positions only)")


def discover(model: nn.Module, variables, batch: dict, *,
             input_key: InputKey = "image", apply_kwargs: dict | None = None,
             branch_rule: str = layer_rules.DEFAULT_BRANCH_RULE,
             allow_fallback: bool = True, loss_fn: LossFn | None = None
             ) -> dict[str, taps.Record]:
  """Traces the model once (no compute) and lists the layers owning params.

  Args:
    model, variables, batch, input_key, apply_kwargs, branch_rule,
      allow_fallback: as for `make_sq_norm_fn`.
    loss_fn: when given, also checks that it returns one value per example.

  Returns:
    {module path key: Record(type, rule kind, leaves, branch info)} in call
    order.

  Raises:
    ValueError: a parameter leaf no tapped call covers, a module applied more
      than once (shared weights: norms are not additive over its calls), a
      layer with no rule when `allow_fallback` is False, a BatchNorm using
      batch statistics, a layer output without the example axis, a loss that
      is not per example.
    TypeError: the model cannot be called with these inputs / apply_kwargs.
  """
  apply_kwargs = _resolve_kwargs(model, apply_kwargs)
  b = batch_size(batch, input_key)
  tracker = taps.Tracker(None, branch_rule=branch_rule,
                         allow_fallback=allow_fallback, batch_size=b)

  def run(v, bt):
    with nn.intercept_methods(tracker):
      out = _apply(model, v, bt, input_key, apply_kwargs)
    if loss_fn is not None:
      check_losses(loss_fn(out, bt), b)
    return out
  try:
    jax.eval_shape(run, variables, batch)
  except TypeError as e:
    err = call_error(model, input_key, apply_kwargs, e)
    if err is e:
      raise
    raise err from e
  records = tracker.records
  shared = [k for k, r in records.items() if r.calls > 1]
  if shared:
    raise ValueError(
        f"modules applied more than once (shared parameters): {shared}; the "
        "per-example norm of a shared weight is not a sum over its calls "
        "(weight tying included). Use method='vmap' for this model")
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


def _signature(model) -> str:
  try:
    return str(inspect.signature(model.__call__))
  except (TypeError, ValueError):
    return "(...)"


def call_error(model, input_key, apply_kwargs, e: TypeError) -> TypeError:
  """The error to raise when calling the model failed with `e`.

  A TypeError about arguments means the call does not fit the model's
  signature: say how the engine calls it and what to pass instead.
  """
  if "argument" not in str(e):
    return e
  return TypeError(
      f"calling {type(model).__name__}{_signature(model)} as "
      f"model.apply(variables, *batch[{input_key!r}], **{apply_kwargs}) "
      f"failed: {str(e).splitlines()[0]}. Pass apply_kwargs= with the "
      "keyword arguments that put it in inference mode (apply_kwargs={} for "
      "none) and input_key= naming its inputs")


def _exact_per_layer(model, variables, batch, loss_fn, input_key,
                     apply_kwargs, branch_rule, allow_fallback, only=None):
  records = discover(model, variables, batch, input_key=input_key,
                     apply_kwargs=apply_kwargs, branch_rule=branch_rule,
                     allow_fallback=allow_fallback)
  keys = list(records) if only is None else [k for k in records if k in only]
  b = batch_size(batch, input_key)
  dtype = _float_dtype(variables)
  aux0 = {k: jnp.zeros((b,), dtype) for k in keys}

  def total_loss(aux):
    tracker = taps.Tracker(aux, only=set(keys), branch_rule=branch_rule,
                           allow_fallback=allow_fallback, batch_size=b)
    with nn.intercept_methods(tracker):
      out = _apply(model, variables, batch, input_key, apply_kwargs)
    losses = loss_fn(out, batch)
    check_losses(losses, b)
    return _masked_sum(losses, batch)
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
  b = batch_size(batch, input_key)
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


def last_layer_key(records: dict[str, taps.Record],
                   last_layer: str | None = None) -> str:
  """The layer `last_layer` scores: the last matmul layer, or the one named.

  Norm layers after it (an ArcFace-style head) are skipped: the
  approximation is about the final linear map.
  """
  if last_layer is not None:
    if last_layer not in records:
      raise ValueError(f"last_layer={last_layer!r} is not a layer owning "
                       f"parameters; layers: {list(records)}")
    return last_layer
  matmuls = [k for k, r in records.items() if r.kind in _LAST_LAYER_KINDS]
  if not matmuls:
    raise ValueError(
        "last_layer: the model has no Dense / DenseGeneral / Einsum layer "
        f"(layers: {[(k, r.type) for k, r in records.items()]}); pass "
        "last_layer='path' naming the layer to score")
  return matmuls[-1]


def per_layer_sq_norms(model, variables, batch, loss_fn: LossFn = softmax_xent,
                       *, method: str = "exact", input_key: InputKey = "image",
                       apply_kwargs: dict | None = None,
                       branch_rule: str = layer_rules.DEFAULT_BRANCH_RULE,
                       allow_fallback: bool = True, vmap_chunk: int = 16,
                       last_layer: str | None = None) -> dict[str, jax.Array]:
  """{module path: [B] squared norm of that module's parameter gradients}.

  Traceable (jit it, or use `make_sq_norm_fn`). Padding rows are exactly 0.
  """
  apply_kwargs = _resolve_kwargs(model, apply_kwargs)
  if method == "exact":
    per = _exact_per_layer(model, variables, batch, loss_fn, input_key,
                           apply_kwargs, branch_rule, allow_fallback)
  elif method == "last_layer":
    records = discover(model, variables, batch, input_key=input_key,
                       apply_kwargs=apply_kwargs, branch_rule=branch_rule,
                       allow_fallback=allow_fallback)
    per = _exact_per_layer(model, variables, batch, loss_fn, input_key,
                           apply_kwargs, branch_rule, allow_fallback,
                           only={last_layer_key(records, last_layer)})
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
                    method: str = "exact", input_key: InputKey = "image",
                    apply_kwargs: dict | None = None,
                    branch_rule: str = layer_rules.DEFAULT_BRANCH_RULE,
                    allow_fallback: bool = True, vmap_chunk: int = 16,
                    last_layer: str | None = None,
                    per_layer: bool = False, jit: bool = True) -> Callable:
  """A jitted fn(variables, batch) -> [B] per-example squared gradient norms.

  Args:
    model: a Flax Linen module; called as model.apply(variables,
      *batch[input_key], **apply_kwargs).
    loss_fn: (outputs, batch) -> [B] per-example losses.
    method: exact | vmap | last_layer (see the module docstring).
    input_key: batch key of the model input (or a tuple of keys: positional
      inputs in that order).
    apply_kwargs: keyword arguments of the model call (default: the
      inference-mode flag the model's __call__ names, see
      `default_apply_kwargs`; {} for none).
    branch_rule: ghost-vs-materialise rule: time | space | ghost | materialize.
    allow_fallback: exact per-example VJP for layers without a rule (else
      they raise).
    vmap_chunk: examples whose gradients are materialised at once (vmap).
    last_layer: the layer path `last_layer` scores (default: the last
      Dense / DenseGeneral / Einsum).
    per_layer: return {module path: [B]} instead of the total.
    jit: wrap in jax.jit.

  Returns:
    fn(variables, batch) -> [B] (float32, float64 under x64 with f64 params).
  """
  def fn(variables, batch):
    per = per_layer_sq_norms(
        model, variables, batch, loss_fn, method=method, input_key=input_key,
        apply_kwargs=apply_kwargs, branch_rule=branch_rule,
        allow_fallback=allow_fallback, vmap_chunk=vmap_chunk,
        last_layer=last_layer)
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
