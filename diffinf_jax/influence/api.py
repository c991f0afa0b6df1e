"""TracIn self-influence of a dataset under any Flax Linen model: one call.

    from diffinf_jax.influence import api
    result = api.self_influence(model, "runs/mine/checkpoints",
                                {"image": x, "label": y},
                                learning_rates=[1e-3, 1e-3, 1e-4])
    result.scores        # [N] float64: sum_t lr_t ||grad loss_i(theta_t)||^2

    I(i) = sum_t lr_t * || grad_theta loss(x_i; theta_t) ||^2

over every parameter (Pruthi et al. 2020, checkpoint form). The contract on the
model, the loss, the variables and the checkpoints is docs/influence_api.md.
Everything that can be wrong with them is checked before any checkpoint is
loaded or any norm computed (`check`): each error names what to change.

Checkpoints are either an Orbax checkpoint directory (this project's
`checkpointing` layout, or any `ocp.CheckpointManager` directory written by a
user's own training loop: the model variables are found in the restored tree
by their collection names, the learning rate in a JSON item or the step's
custom metadata under `learning_rate` / `lr`), or a list of variables with
their learning rates. A learning rate the checkpoints do not store must be
passed explicitly (`learning_rates=`): it is never assumed to be 1.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Mapping, Sequence

import jax
import numpy as np

from diffinf_jax import checkpointing
from diffinf_jax import sharding
from diffinf_jax.influence import layer_rules
from diffinf_jax.influence import per_example
from diffinf_jax.influence import tracin

softmax_xent = per_example.softmax_xent
sequence_xent = per_example.sequence_xent


@dataclasses.dataclass
class SelfInfluence:
  """Self-influence scores and their breakdowns.

  Attributes:
    scores: [N] float64 self-influence of each row of the dataset.
    index: [N] the dataset's `index` column (or 0..N-1).
    per_checkpoint: [K, N] float64 lr_t * ||g_t||^2 (sums to `scores`).
    steps: [K] checkpoint steps (list positions for in-memory variables).
    learning_rates: [K] the lr_t used.
    per_layer: {module path: [N]} sum_t lr_t * that module's squared norm
      (sums to `scores`), when requested; else None.
    plan: the per-layer rule plan (path, type, rule, branch).
    method: exact | vmap | last_layer.
  """
  scores: np.ndarray
  index: np.ndarray
  per_checkpoint: np.ndarray
  steps: list[int]
  learning_rates: list[float]
  per_layer: dict[str, np.ndarray] | None
  plan: list[dict]
  method: str


# --- data -----------------------------------------------------------------


def as_arrays(data, input_key: per_example.InputKey = "image"
              ) -> dict[str, np.ndarray]:
  """Host arrays {key: [N, ...]} of a dataset.

  Args:
    data: a mapping of arrays with N rows each, or an iterable of such
      batches (concatenated).
    input_key: the model input's key(s), which must be present.

  Raises:
    ValueError: no rows, ragged columns or a missing input key.
  """
  if isinstance(data, Mapping):
    arrays = {k: np.asarray(v) for k, v in data.items()}
  else:
    parts = [dict(b) for b in data]
    if not parts:
      raise ValueError("the dataset yielded no batches")
    arrays = {k: np.concatenate([np.asarray(p[k]) for p in parts])
              for k in parts[0]}
  per_example.model_inputs(arrays, input_key)  # raises naming the keys
  scalars = [k for k, v in arrays.items() if not np.ndim(v)]
  if scalars:
    raise ValueError(f"dataset columns {scalars} have no row axis; every "
                     "column needs one entry per example")
  sizes = {k: len(v) for k, v in arrays.items()}
  if not sizes or min(sizes.values()) == 0:
    raise ValueError(f"the dataset has no rows (columns {sizes})")
  if len(set(sizes.values())) != 1:
    raise ValueError(f"dataset columns differ in length: {sizes}")
  return arrays


# --- checkpoints ------------------------------------------------------------


def load_checkpoints(directory: str, abstract: Mapping, *,
                     learning_rates: Sequence[float] | None = None,
                     steps: Sequence[int] | None = None,
                     variables_fn: Callable[[Any], Any] | None = None
                     ) -> list[tracin.Checkpoint]:
  """The steps of an Orbax checkpoint directory as lazily loaded checkpoints.

  Args:
    directory: a CheckpointManager directory (numbered step directories):
      this project's `checkpointing` layout or any other.
    abstract: the model's variables (arrays or ShapeDtypeStructs), for
      locating and checking the restored trees.
    learning_rates: lr_t per selected step, overriding the metadata.
    steps: the steps to use (default: all, ascending).
    variables_fn: restored tree (one item, or {item: tree}) -> variables,
      when the variables cannot be found by collection name.

  Returns:
    [tracin.Checkpoint] with validated learning rates.

  Raises:
    FileNotFoundError: no step directories.
    ValueError: a requested step is missing; a learning rate is missing,
      not finite or not > 0; a count mismatch.
  """
  found, from_meta, loaders = checkpointing.read_any(
      directory, abstract, steps=steps, variables_fn=variables_fn)
  lrs = _learning_rates(found, from_meta, learning_rates, directory)
  return [tracin.Checkpoint(s, lr, load)
          for s, lr, load in zip(found, lrs, loaders)]


def _learning_rates(steps: Sequence[int], from_meta: Sequence[float | None],
                    explicit: Sequence[float] | None, where: str
                    ) -> list[float]:
  """lr_t: the explicit list if given, else the stored ones; never 1."""
  explicit = list(explicit) if explicit is not None else []
  if explicit and len(explicit) != len(steps):
    raise ValueError(
        f"learning_rates has {len(explicit)} values for {len(steps)} "
        f"checkpoints (steps {list(steps)}) of {where}; give one per "
        "checkpoint")
  if not explicit:
    missing = [s for s, v in zip(steps, from_meta) if v is None]
    if missing:
      raise ValueError(
          f"{where}: the checkpoints at steps {missing} store no learning "
          f"rate (looked for {list(checkpointing.LR_KEYS)} in JSON items and custom "
          "metadata); pass learning_rates=[lr_1, ..., lr_K], one per "
          "checkpoint: TracIn weights each checkpoint by it and never "
          "assumes 1")
  return tracin.validate_learning_rates(steps, from_meta, tuple(explicit))


def _is_variables(x) -> bool:
  return isinstance(x, Mapping) and "params" in x


def resolve_checkpoints(checkpoints, abstract: Mapping, *,
                        learning_rates: Sequence[float] | None = None,
                        steps: Sequence[int] | None = None,
                        variables_fn: Callable | None = None
                        ) -> list[tracin.Checkpoint]:
  """Any accepted checkpoint form as [tracin.Checkpoint] (see self_influence).
  """
  if isinstance(checkpoints, (str, os.PathLike)):
    return load_checkpoints(checkpoints, abstract,
                            learning_rates=learning_rates, steps=steps,
                            variables_fn=variables_fn)
  if _is_variables(checkpoints):
    checkpoints = [checkpoints]
  items = list(checkpoints)
  if not items:
    raise ValueError("no checkpoints given")
  cks, from_meta = [], []
  for i, item in enumerate(items):
    if isinstance(item, tracin.Checkpoint):
      cks.append(item)
      from_meta.append(item.learning_rate)
    elif (isinstance(item, tuple) and len(item) == 2
          and _is_variables(item[0])):
      cks.append(tracin.Checkpoint(i, float(item[1]),
                                   lambda v=item[0]: v))
      from_meta.append(float(item[1]))
    elif _is_variables(item):
      cks.append(tracin.Checkpoint(i, None, lambda v=item: v))
      from_meta.append(None)
    else:
      raise ValueError(
          f"checkpoint {i} is a {type(item).__name__}: give an Orbax "
          "directory, a list of variables dicts (with 'params'), of "
          "(variables, learning_rate) pairs or of tracin.Checkpoint")
  lrs = _learning_rates([c.step for c in cks], from_meta, learning_rates,
                        "the given checkpoints")
  return [dataclasses.replace(c, learning_rate=lr) for c, lr in zip(cks, lrs)]


# --- checks and the loop ---------------------------------------------------


def abstract_variables(model, example: dict, input_key, apply_kwargs) -> Any:
  """The model's variables as ShapeDtypeStructs (init traced, not run)."""
  inputs = per_example.model_inputs(example, input_key)
  one = jax.tree.map(lambda a: a[:1], inputs)
  kwargs = per_example.default_apply_kwargs(model) if apply_kwargs is None \
      else apply_kwargs
  try:
    return jax.eval_shape(
        lambda: model.init(jax.random.key(0), *one, **kwargs))
  except TypeError as e:
    err = per_example.call_error(model, input_key, kwargs, e)
    if err is e:
      raise
    raise err from e


def check(model, variables, batch: dict, *,
          loss_fn: per_example.LossFn = softmax_xent,
          input_key: per_example.InputKey = "image",
          apply_kwargs: dict | None = None, method: str = "exact",
          branch_rule: str = layer_rules.DEFAULT_BRANCH_RULE,
          allow_fallback: bool = True, last_layer: str | None = None
          ) -> list[dict]:
  """Validates model, loss, variables and batch by tracing; no compute.

  Returns:
    The per-layer plan (`per_example.describe`), last_layer's one layer for
    that method.

  Raises:
    ValueError / TypeError naming what to change (see docs/influence_api.md).
  """
  if method not in per_example.METHODS:
    raise ValueError(f"method {method!r}: use one of {per_example.METHODS}")
  kw = dict(input_key=input_key, apply_kwargs=apply_kwargs,
            branch_rule=branch_rule, allow_fallback=allow_fallback)
  records = per_example.discover(model, variables, batch, loss_fn=loss_fn,
                                 **kw)
  plan = [{**r.info, "path": k, "type": r.type, "rule": r.kind,
           "leaves": list(r.leaves)} for k, r in records.items()]
  if method == "last_layer":
    key = per_example.last_layer_key(records, last_layer)
    plan = [p for p in plan if p["path"] == key]
  return plan


def self_influence(model, checkpoints, data, *,
                   loss_fn: per_example.LossFn = softmax_xent,
                   learning_rates: Sequence[float] | None = None,
                   steps: Sequence[int] | None = None,
                   input_key: per_example.InputKey = "image",
                   apply_kwargs: dict | None = None, method: str = "exact",
                   batch_size: int = 64, per_layer: bool = False,
                   branch_rule: str = layer_rules.DEFAULT_BRANCH_RULE,
                   allow_fallback: bool = True, vmap_chunk: int = 16,
                   last_layer: str | None = None,
                   variables_fn: Callable[[Any], Any] | None = None,
                   mesh: jax.sharding.Mesh | None = None) -> SelfInfluence:
  """TracIn self-influence of every row of `data` over `checkpoints`.

  Args:
    model: a flax.linen Module, called as model.apply(variables,
      *batch[input_key], **apply_kwargs).
    checkpoints: an Orbax checkpoint directory; or a list of variables dicts
      (with learning_rates=), of (variables, learning_rate) pairs, or of
      tracin.Checkpoint.
    data: {key: [N, ...]} arrays (the model input under `input_key`, what
      the loss reads, optionally `index`), or an iterable of such batches.
    loss_fn: (outputs, batch) -> [B] one loss per example (never a mean).
    learning_rates: lr_t per checkpoint; required when the checkpoints do not
      store them, and overrides them otherwise.
    steps: the directory's steps to use (default: all).
    input_key: batch key(s) of the model input(s).
    apply_kwargs: keyword arguments of the model call (default: its
      inference-mode flag, see per_example.default_apply_kwargs).
    method: exact | vmap | last_layer.
    batch_size: examples per device step (the last batch is padded).
    per_layer: also return each layer's share of the scores.
    branch_rule: ghost-vs-materialise rule (layer_rules.BRANCH_RULES).
    allow_fallback: allow the exact per-example-VJP fallback for layers
      without a fast rule (else they raise).
    vmap_chunk: examples materialised at once by method="vmap".
    last_layer: the layer method="last_layer" scores (default: the last
      Dense / DenseGeneral / Einsum).
    variables_fn: restored Orbax tree -> model variables, when they cannot be
      found by collection name.
    mesh: a one-axis jax.sharding.Mesh (automatic axis type, e.g.
      `Mesh(np.array(jax.devices()), ("data",))`) to split batches over;
      default: one device.

  Returns:
    SelfInfluence (scores, per-checkpoint and optionally per-layer parts).

  Raises:
    ValueError / TypeError before any checkpoint is loaded when the model,
    loss, data or checkpoints break the contract (docs/influence_api.md);
    ValueError when a norm is not finite (names the step and rows).
  """
  arrays = as_arrays(data, input_key)
  index = arrays.pop("index", None)
  n = len(next(iter(arrays.values())))
  index = np.arange(n) if index is None else np.asarray(index)
  if mesh is not None:
    batch_size = sharding.global_batch_size(batch_size, mesh)
  example = next(tracin.host_batches(arrays, slice(0, n),
                                     min(batch_size, n)))[0]
  abstract = abstract_variables(model, example, input_key, apply_kwargs)
  plan = check(model, abstract, example, loss_fn=loss_fn,
               input_key=input_key, apply_kwargs=apply_kwargs, method=method,
               branch_rule=branch_rule, allow_fallback=allow_fallback,
               last_layer=last_layer)
  cks = resolve_checkpoints(checkpoints, abstract,
                            learning_rates=learning_rates, steps=steps,
                            variables_fn=variables_fn)
  fn = per_example.make_sq_norm_fn(
      model, loss_fn, method=method, input_key=input_key,
      apply_kwargs=apply_kwargs, branch_rule=branch_rule,
      allow_fallback=allow_fallback, vmap_chunk=vmap_chunk,
      last_layer=last_layer, per_layer=True)
  out = tracin.self_influence(
      fn, cks, {**arrays, "index": index}, batch_size=batch_size, mesh=mesh,
      check=lambda v, step: checkpointing.check_variables(
          v, abstract, f"checkpoint {step}"))
  lrs = np.asarray([c.learning_rate for c in cks], np.float64)
  per_layer_out = None
  if per_layer:
    per_layer_out = {k: np.tensordot(lrs, v, axes=1) for k, v in
                     out["per_layer"].items()}
  return SelfInfluence(
      scores=out["scores"], index=index, per_checkpoint=out["per_checkpoint"],
      steps=[int(c.step) for c in cks], learning_rates=lrs.tolist(),
      per_layer=per_layer_out, plan=plan, method=method)


def top_k(result: SelfInfluence, k: int) -> np.ndarray:
  """Dataset indices of the k highest self-influence scores (descending)."""
  order = np.argsort(-result.scores, kind="stable")[:k]
  return result.index[order]
