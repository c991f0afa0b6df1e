"""`diffinf bench influence`: per-sample gradient norms vs a training step.

One process, one model, one batch, random weights: throughput of a plain
training step (forward + backward of the mean loss + Adam update, BatchNorm in
training mode), of the `exact`, `vmap` and `last_layer` norm methods
(inference mode), their ratios to the training step, the max relative error of
`exact` against `vmap`, the achieved GFLOP/s of `exact` and a matmul peak
measured in the same run. `--model` picks the family:

  resnet18        the project's classifier from `config.model` (ResNet-18 +
                  head), config.bench.image_size images, non-trivial
                  BatchNorm statistics
  vit_s           ViT-S/16 (width 384, depth 12, 6 heads, MLP 1536) on
                  config.bench.image_size images, 10 classes
  transformer_lm  a 6-layer causal text transformer (width 256, 4 heads, MLP
                  1024) on --seq-len tokens of a --vocab-size vocabulary,
                  next-token cross-entropy summed over positions

all with config.bench.batch_size examples. When PyTorch (and Opacus / Captum)
are installed, the PyTorch per-sample methods of `torch_peers` are timed on a
mirror of the model with the same weights and batch too (Captum on its first
few samples only).

Peak memory per method is XLA's own account of the compiled program
(`compiled.memory_analysis()`): temporaries + arguments + outputs - aliased
bytes, in MiB. It is the size of the buffers XLA allocates for one call, which
on CPU is what the process needs on top of the Python runtime.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any, Callable

import numpy as np

from diffinf_jax.bench import torch_peers
from diffinf_jax.influence import layer_rules

METHODS = ("train", "exact", "vmap", "last_layer") + torch_peers.PEERS
# Opt-in (--methods): what any exact method costs before its norms. forward:
# the inference forward and loss; fwd_bwd: forward + backward to every
# layer's output (the engine with only the first layer's norm). Their times
# bound what `exact` can reach: t(vmap) / t(fwd_bwd) is its ratio to vmap
# if every norm were free.
FLOOR_METHODS = ("forward", "fwd_bwd")
MODELS = ("resnet18", "vit_s", "transformer_lm")
VIT_CLASSES = 10


def configure(parser):
  parser.add_argument(
      "--methods", default=",".join(METHODS),
      help="comma-separated subset to time; the PyTorch peers ("
           f"{', '.join(torch_peers.PEERS)}) run only when their packages are "
           "installed; add forward,fwd_bwd for the cost of exact before its "
           "norms")
  parser.add_argument(
      "--model", default="resnet18", choices=MODELS,
      help="model family: resnet18 (config.model), vit_s (ViT-S/16 at "
           "config.bench.image_size), transformer_lm (6-layer text "
           "transformer on --seq-len tokens)")
  parser.add_argument("--seq-len", type=int, default=128,
                      help="tokens per example (transformer_lm)")
  parser.add_argument("--vocab-size", type=int, default=8192,
                      help="vocabulary size (transformer_lm)")


def _compile(fn, *args):
  import jax
  t0 = time.perf_counter()
  compiled = jax.jit(fn).lower(*args).compile()
  return compiled, time.perf_counter() - t0


def _call(compiled, args):
  import jax
  return lambda: jax.block_until_ready(compiled(*args))


def _time_interleaved(programs: dict, repeats: int,
                      best_of: tuple[str, ...] = ()) -> dict[str, float]:
  """Median seconds per call of each {name: no-argument callable}.

  Programs named in `best_of` report their fastest call instead (a peak).

  The programs run in turns (one call of each per round) so that a change of
  load on a shared machine hits every method alike; the ratios between
  methods are then meaningful even when the absolute figures drift.
  """
  for run in programs.values():
    run()  # warm-up
  times = {name: [] for name in programs}
  for _ in range(max(repeats, 1)):
    for name, run in programs.items():
      t0 = time.perf_counter()
      run()
      times[name].append(time.perf_counter() - t0)
  return {name: float(np.min(t) if name in best_of else np.median(t))
          for name, t in times.items()}


def _memory_mb(compiled) -> float:
  m = compiled.memory_analysis()
  if m is None:
    return float("nan")
  total = (m.temp_size_in_bytes + m.argument_size_in_bytes
           + m.output_size_in_bytes - m.alias_size_in_bytes)
  return total / 2**20


def exact_flops_per_sample(plan: list[dict]) -> float:
  """Useful FLOPs of `exact` per example from the layer plan (2 per MAC).

  Matmul (Dense, DenseGeneral, Einsum) and conv layers: forward (T D C per
  group), backward to the layer input (the same, except for a first layer,
  whose input needs no gradient) and the norm (materialise: T D C; ghost:
  T^2 (D + C); one position: D + C); embeddings: the T^2 F Gram of the ghost
  branch. Norm layers, elementwise ops and the attention's own score and
  value products (no parameters) are not counted: the figure errs low. XLA's
  own cost_analysis misses oneDNN custom calls on CPU.
  """
  macs = 0.0
  first = True
  for layer in plan:
    if layer["rule"] == "embed" and layer["branch"] == "ghost":
      macs += layer["T"] ** 2 * layer["C"]
    if layer["rule"] in ("conv", "dense", "einsum"):
      t, d, c, g = layer["T"], layer["D"], layer["C"], layer.get("groups", 1)
      mac = t * d * c * g
      macs += mac * (1 if first else 2)
      if layer["branch"] == "materialize":
        macs += mac
      elif layer["branch"] == "ghost":
        macs += t * t * (d + c) * g
      else:
        macs += (d + c) * g
    first = False
  return 2.0 * macs


def _speed_key(method: str) -> str:
  """The JSON key of a method's throughput (the issue's interface names)."""
  return ("train_step_samples_per_s" if method == "train"
          else f"{method}_samples_per_s")


def _train_kwargs(model) -> dict:
  """The training-mode counterpart of the model's inference flag."""
  from diffinf_jax.influence import per_example
  return {k: not v for k, v in per_example.default_apply_kwargs(model).items()}


def make_train_step(model, variables, loss_fn, input_key, tx) -> Callable:
  """fn(params, opt_state, other collections, batch) -> updated (Adam).

  Mean loss over the batch, the model in training mode; collections other
  than params (BatchNorm statistics) are updated as training does.
  """
  import jax
  import optax
  from diffinf_jax.influence import per_example
  mutable = [c for c in variables if c != "params"]
  kwargs = _train_kwargs(model)

  def train_step(params, opt, others, batch):
    def loss(p):
      inputs = per_example.model_inputs(batch, input_key)
      if mutable:
        outputs, upd = model.apply({"params": p, **others}, *inputs,
                                   mutable=mutable, **kwargs)
      else:
        outputs, upd = model.apply({"params": p}, *inputs, **kwargs), {}
      return loss_fn(outputs, batch).mean(), upd
    (_, upd), grads = jax.value_and_grad(loss, has_aux=True)(params)
    updates, opt = tx.update(grads, opt, params)
    return optax.apply_updates(params, updates), opt, upd
  return train_step


def run_bench(model, variables, batch, *, repeats: int, vmap_chunk: int,
              branch_rule: str = layer_rules.DEFAULT_BRANCH_RULE,
              methods=METHODS, loss_fn: Callable | None = None,
              input_key: str = "image") -> dict:
  """Times the methods on one batch; returns the JSON-ready figures."""
  import jax
  import optax
  from diffinf_jax.influence import per_example
  loss_fn = per_example.softmax_xent if loss_fn is None else loss_fn
  x = batch[input_key]
  b = int(x.shape[0])
  out = {"batch_size": b, "input_shape": [int(s) for s in x.shape[1:]],
         "device": str(jax.devices()[0].platform), "peak_memory_mb": {},
         "compile_s": {},
         "num_params": int(sum(np.size(v) for v in
                               jax.tree.leaves(variables["params"])))}
  if x.ndim == 4:
    out["image_size"] = int(x.shape[1])
  programs = {}
  if "train" in methods:
    tx = optax.adam(1e-4)
    train_step = make_train_step(model, variables, loss_fn, input_key, tx)
    others = {k: v for k, v in variables.items() if k != "params"}
    args = (variables["params"], tx.init(variables["params"]), others, batch)
    compiled, out["compile_s"]["train"] = _compile(train_step, *args)
    programs["train"] = _call(compiled, args)
    out["peak_memory_mb"]["train"] = _memory_mb(compiled)
  for name, fn in _floor_programs(model, variables, batch, loss_fn,
                                  input_key, branch_rule, methods).items():
    compiled, out["compile_s"][name] = _compile(fn, variables, batch)
    programs[name] = _call(compiled, (variables, batch))
    out["peak_memory_mb"][name] = _memory_mb(compiled)
  results = {}
  for method in ("exact", "vmap", "last_layer"):
    if method not in methods:
      continue
    fn = per_example.make_sq_norm_fn(model, loss_fn, method=method, jit=False,
                                     vmap_chunk=vmap_chunk,
                                     branch_rule=branch_rule,
                                     input_key=input_key)
    compiled, out["compile_s"][method] = _compile(fn, variables, batch)
    programs[method] = _call(compiled, (variables, batch))
    out["peak_memory_mb"][method] = _memory_mb(compiled)
    results[method] = np.asarray(compiled(variables, batch), np.float64)
  counts = {}
  for peer in torch_peers.PEERS:
    if (peer in methods and torch_peers.available(peer)
        and torch_peers.supports(model)):
      run = torch_peers.runner(peer, model, variables, batch, vmap_chunk)
      results[peer] = np.asarray(run(), np.float64)
      programs[peer] = run
      counts[peer] = len(results[peer])
  # The matmul peak takes its turns with the methods, so that the fraction of
  # peak compares figures taken under the same machine load.
  mm_n = 2048
  mm_a = jax.random.normal(jax.random.key(0), (mm_n, mm_n), np.float32)
  programs["matmul"] = _call(_compile(lambda a: a @ a, mm_a)[0], (mm_a,))
  # The peak is the fastest matmul call, so the fraction of peak that the
  # methods reach (medians) errs low, never high, on a noisy machine.
  times = _time_interleaved(programs, repeats, best_of=("matmul",))
  out["matmul_peak_gflops_per_s"] = 2 * mm_n**3 / times.pop("matmul") / 1e9
  if "exact" in times:
    out["layer_plan"] = per_example.describe(
        model, variables, batch, branch_rule=branch_rule, input_key=input_key)
    flops = exact_flops_per_sample(out["layer_plan"]) * b
    out["exact_gflop_per_sample"] = flops / b / 1e9
    out["exact_gflops_per_s"] = flops / times["exact"] / 1e9
  for m, t in times.items():
    out[_speed_key(m)] = counts.get(m, b) / t
    if "train" in times and m != "train":
      out[f"{m}_vs_train_step"] = (times["train"] / b) / (t / counts.get(m, b))
  if "exact" in times and "vmap" in times:
    out["exact_vs_vmap_speedup"] = times["vmap"] / times["exact"]
  if "fwd_bwd" in times:
    if "exact" in times:
      out["exact_norm_share"] = 1.0 - times["fwd_bwd"] / times["exact"]
    if "vmap" in times:
      out["fwd_bwd_vs_vmap_speedup"] = times["vmap"] / times["fwd_bwd"]
  for ref in ("vmap",) + torch_peers.PEERS:
    if "exact" in results and ref in results:
      n = len(results[ref])
      out[f"exact_vs_{ref}_max_rel_err"] = float(np.max(
          np.abs(results["exact"][:n] - results[ref])
          / np.maximum(np.abs(results[ref]), 1e-30)))
  peers = [p for p in torch_peers.PEERS if p in times]
  if "exact" in times and peers:
    for p in peers:
      out[f"exact_vs_{p}_speedup"] = (out["exact_samples_per_s"]
                                      / out[f"{p}_samples_per_s"])
    out["exact_vs_fastest_torch_speedup"] = min(
        out[f"exact_vs_{p}_speedup"] for p in peers)
  mem = out["peak_memory_mb"]
  if "train" in mem:
    for m in ("exact", "vmap", "last_layer"):
      if m in mem:
        out[f"{m}_memory_vs_train_step"] = mem[m] / mem["train"]
  if "exact_gflops_per_s" in out:
    out["exact_fraction_of_matmul_peak"] = (out["exact_gflops_per_s"]
                                            / out["matmul_peak_gflops_per_s"])
  return out


def _floor_programs(model, variables, batch, loss_fn, input_key,
                    branch_rule, methods) -> dict[str, Callable]:
  """The opt-in FLOOR_METHODS programs, fn(variables, batch)."""
  import jax.numpy as jnp
  from diffinf_jax.influence import per_example
  programs = {}
  if "forward" in methods:
    kwargs = per_example.default_apply_kwargs(model)

    def forward(v, bt):
      inputs = per_example.model_inputs(bt, input_key)
      return jnp.sum(loss_fn(model.apply(v, *inputs, **kwargs), bt))
    programs["forward"] = forward
  if "fwd_bwd" in methods:
    first = per_example.describe(model, variables, batch,
                                 input_key=input_key)[0]["path"]
    programs["fwd_bwd"] = per_example.make_sq_norm_fn(
        model, loss_fn, method="last_layer", last_layer=first, jit=False,
        branch_rule=branch_rule, input_key=input_key)
  return programs


def bench_inputs(config):
  """(model, variables, batch) for the configured classifier and sizes."""
  import jax
  from diffinf_jax import models
  model = models.get_model(config.model)
  b, s = config.bench.batch_size, config.bench.image_size
  rng = np.random.default_rng(config.seed)
  batch = {"image": rng.uniform(-1, 1, (b, s, s, 3)).astype(np.float32),
           "label": rng.integers(0, config.model.num_classes, b).astype(
               np.int32)}
  variables = model.init(jax.random.key(config.seed), batch["image"][:1],
                         train=False)
  if "batch_stats" in variables:  # running stats away from (0, 1)
    keys = iter(jax.random.split(jax.random.key(1), 10_000))

    def perturb(path, v):
      r = jax.random.uniform(next(keys), v.shape, v.dtype, 0.5, 1.5)
      return v * r if path[-1].key == "var" else v + 0.1 * (r - 1.0)
    stats = jax.tree_util.tree_map_with_path(perturb, variables["batch_stats"])
    variables = {**variables, "batch_stats": stats}
  return model, variables, batch


@dataclasses.dataclass
class BenchCase:
  """One model family's model, weights, batch and loss."""
  name: str
  model: Any
  variables: Any
  batch: dict
  loss_fn: Callable
  input_key: str = "image"


def bench_case(config, model_name: str = "resnet18", *, seq_len: int = 128,
               vocab_size: int = 8192, init: bool = True) -> BenchCase:
  """The inputs of `--model model_name` at the configured batch size.

  Args:
    config: with bench.batch_size, bench.image_size, seed (and model for
      resnet18).
    model_name: one of MODELS.
    seq_len: tokens per example (transformer_lm).
    vocab_size: vocabulary (transformer_lm).
    init: initialise the weights (False leaves variables None).
  """
  import jax
  from diffinf_jax.bench.models import transformer_lm
  from diffinf_jax.bench.models import vit
  from diffinf_jax.influence import per_example
  if model_name == "resnet18":
    model, variables, batch = bench_inputs(config)
    return BenchCase(model_name, model, variables, batch,
                     per_example.softmax_xent)
  b = config.bench.batch_size
  rng = np.random.default_rng(config.seed)
  if model_name == "vit_s":
    s = config.bench.image_size
    model = vit.vit_s16(VIT_CLASSES)
    batch = {"image": rng.uniform(-1, 1, (b, s, s, 3)).astype(np.float32),
             "label": rng.integers(0, VIT_CLASSES, b).astype(np.int32)}
    case = BenchCase(model_name, model, None, batch, per_example.softmax_xent)
  elif model_name == "transformer_lm":
    model = transformer_lm.TransformerLM(vocab_size=vocab_size)
    seq = rng.integers(0, vocab_size, (b, seq_len + 1)).astype(np.int32)
    batch = {"tokens": seq[:, :-1], "label": seq[:, 1:]}  # next tokens
    case = BenchCase(model_name, model, None, batch,
                     per_example.sequence_xent, input_key="tokens")
  else:
    raise ValueError(f"--model {model_name!r}: use one of {MODELS}")
  if init:  # One compiled init: eager init compiles every initialiser op.
    case.variables = jax.jit(model.init)(jax.random.key(config.seed),
                                         batch[case.input_key][:1])
  return case


def main(config, args) -> int:
  """`diffinf bench influence`: config (bench.*, influence.*) and flags."""
  case = bench_case(config, getattr(args, "model", "resnet18"),
                    seq_len=getattr(args, "seq_len", 128),
                    vocab_size=getattr(args, "vocab_size", 8192))
  out = run_bench(case.model, case.variables, case.batch,
                  repeats=config.bench.repeats,
                  vmap_chunk=config.influence.vmap_chunk,
                  branch_rule=config.influence.branch_rule,
                  methods=tuple(args.methods.split(",")),
                  loss_fn=case.loss_fn, input_key=case.input_key)
  out["model"] = case.name
  if args.json:
    print(json.dumps({k: v for k, v in out.items() if k != "layer_plan"},
                     sort_keys=True))
    return 0
  shape = "x".join(str(s) for s in out["input_shape"])
  print(f"influence bench: {case.name} ({out['num_params']:,} parameters), "
        f"batch {out['batch_size']} of {shape}, {out['device']}")
  for m in METHODS + FLOOR_METHODS:
    key = _speed_key(m)
    if key in out:
      mem = out["peak_memory_mb"].get(m)
      print(f"  {m:15s} {out[key]:8.1f} samples/s"
            + (f"  peak {mem:8.0f} MiB" if mem is not None else ""))
  for k in ("exact_vs_train_step", "exact_vs_vmap_speedup",
            "exact_norm_share", "fwd_bwd_vs_vmap_speedup",
            "exact_vs_vmap_max_rel_err", "exact_vs_fastest_torch_speedup",
            *(f"exact_vs_{p}_{w}" for p in torch_peers.PEERS
              for w in ("speedup", "max_rel_err")),
            "exact_memory_vs_train_step", "vmap_memory_vs_train_step",
            "exact_gflops_per_s", "matmul_peak_gflops_per_s",
            "exact_fraction_of_matmul_peak"):
    if k in out:
      print(f"  {k}: {out[k]:.4g}")
  for layer in out.get("layer_plan", []):
    print(f"    {layer['path']:40s} {layer['rule']:10s} {layer['branch']}")
  return 0
