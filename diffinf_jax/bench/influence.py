"""`diffinf bench influence`: per-sample gradient norms vs a training step.

One process, one model, one batch (config.bench.batch_size images of
config.bench.image_size, random weights with non-trivial BatchNorm
statistics): throughput of a plain training step (forward + backward of the
mean loss + Adam update, BatchNorm in training mode), of the `exact`, `vmap`
and `last_layer` norm methods (BatchNorm in inference mode), their ratios to
the training step, the max relative error of `exact` against `vmap`, the
achieved GFLOP/s of `exact` and a matmul peak measured in the same run.
When PyTorch (and Opacus / Captum) are installed and the model is the
ResNet-18 + head, the PyTorch per-sample methods of `torch_peers` are timed on
the same weights and batch too (Captum on its first few samples only).

Peak memory per method is XLA's own account of the compiled program
(`compiled.memory_analysis()`): temporaries + arguments + outputs - aliased
bytes, in MiB. It is the size of the buffers XLA allocates for one call, which
on CPU is what the process needs on top of the Python runtime.
"""

from __future__ import annotations

import json
import time

import numpy as np

from diffinf_jax.bench import torch_peers

METHODS = ("train", "exact", "vmap", "last_layer") + torch_peers.PEERS


def configure(parser):
  parser.add_argument(
      "--methods", default=",".join(METHODS),
      help="comma-separated subset to time; the PyTorch peers ("
           f"{', '.join(torch_peers.PEERS)}) run only when their packages are "
           "installed and the model is the ResNet-18 of models/resnet.py")


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

  Conv/Dense layers only: forward (T D C per group), backward to the layer
  input (the same, except for the first layer, whose input needs no
  gradient) and the norm (materialise: T D C; ghost: T^2 (D + C); one
  position: D + C). Norm layers and elementwise ops are O(activations) and
  not counted. XLA's own cost_analysis misses oneDNN custom calls on CPU.
  """
  macs = 0.0
  first = True
  for layer in plan:
    if layer["rule"] not in ("conv", "dense"):
      continue
    t, d, c, g = layer["T"], layer["D"], layer["C"], layer.get("groups", 1)
    mac = t * d * c * g
    macs += mac * (1 if first else 2)
    first = False
    if layer["branch"] == "materialize":
      macs += mac
    elif layer["branch"] == "ghost":
      macs += t * t * (d + c) * g
    else:
      macs += (d + c) * g
  return 2.0 * macs


def _speed_key(method: str) -> str:
  """The JSON key of a method's throughput (the issue's interface names)."""
  return ("train_step_samples_per_s" if method == "train"
          else f"{method}_samples_per_s")


def run_bench(model, variables, batch, *, repeats: int, vmap_chunk: int,
              branch_rule: str = "time",
              methods=METHODS) -> dict:
  """Times the methods on one batch; returns the JSON-ready figures."""
  import jax
  import optax
  from diffinf_jax.influence import per_example
  b = int(batch["image"].shape[0])
  out = {"batch_size": b, "image_size": int(batch["image"].shape[1]),
         "device": str(jax.devices()[0].platform), "peak_memory_mb": {},
         "compile_s": {}}
  programs = {}
  if "train" in methods:
    tx = optax.adam(1e-4)

    def train_step(params, opt, stats, batch):
      def loss(p):
        outputs, upd = model.apply({"params": p, "batch_stats": stats},
                                   batch["image"], train=True,
                                   mutable=["batch_stats"])
        return per_example.softmax_xent(outputs, batch).mean(), upd
      (_, upd), grads = jax.value_and_grad(loss, has_aux=True)(params)
      updates, opt = tx.update(grads, opt, params)
      return optax.apply_updates(params, updates), opt, upd["batch_stats"]
    args = (variables["params"], tx.init(variables["params"]),
            variables.get("batch_stats", {}), batch)
    compiled, out["compile_s"]["train"] = _compile(train_step, *args)
    programs["train"] = _call(compiled, args)
    out["peak_memory_mb"]["train"] = _memory_mb(compiled)
  results = {}
  for method in ("exact", "vmap", "last_layer"):
    if method not in methods:
      continue
    fn = per_example.make_sq_norm_fn(model, method=method, jit=False,
                                     vmap_chunk=vmap_chunk,
                                     branch_rule=branch_rule)
    compiled, out["compile_s"][method] = _compile(fn, variables, batch)
    programs[method] = _call(compiled, (variables, batch))
    out["peak_memory_mb"][method] = _memory_mb(compiled)
    results[method] = np.asarray(compiled(variables, batch), np.float64)
  counts = {}
  for peer in torch_peers.PEERS:
    if (peer in methods and torch_peers.available(peer)
        and torch_peers.supports(model)):
      run = torch_peers.runner(peer, variables, batch, vmap_chunk)
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
        model, variables, batch, branch_rule=branch_rule)
    flops = exact_flops_per_sample(out["layer_plan"]) * b
    out["exact_gflop_per_sample"] = flops / b / 1e9
    out["exact_gflops_per_s"] = flops / times["exact"] / 1e9
  for m, t in times.items():
    out[_speed_key(m)] = counts.get(m, b) / t
    if "train" in times and m != "train":
      out[f"{m}_vs_train_step"] = (times["train"] / b) / (t / counts.get(m, b))
  if "exact" in times and "vmap" in times:
    out["exact_vs_vmap_speedup"] = times["vmap"] / times["exact"]
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
  if "train" in out["peak_memory_mb"] and "exact" in out["peak_memory_mb"]:
    out["exact_memory_vs_train_step"] = (out["peak_memory_mb"]["exact"]
                                         / out["peak_memory_mb"]["train"])
  if "exact_gflops_per_s" in out:
    out["exact_fraction_of_matmul_peak"] = (out["exact_gflops_per_s"]
                                            / out["matmul_peak_gflops_per_s"])
  return out


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


def main(args) -> int:
  from diffinf_jax.stages import common
  config = common.load_config(args)
  model, variables, batch = bench_inputs(config)
  out = run_bench(model, variables, batch, repeats=config.bench.repeats,
                  vmap_chunk=config.influence.vmap_chunk,
                  branch_rule=config.influence.branch_rule,
                  methods=tuple(args.methods.split(",")))
  if args.json:
    print(json.dumps({k: v for k, v in out.items() if k != "layer_plan"},
                     sort_keys=True))
    return 0
  print(f"influence bench: batch {out['batch_size']}, "
        f"{out['image_size']}x{out['image_size']}, {out['device']}")
  for m in METHODS:
    key = _speed_key(m)
    if key in out:
      mem = out["peak_memory_mb"].get(m)
      print(f"  {m:15s} {out[key]:8.1f} samples/s"
            + (f"  peak {mem:8.0f} MiB" if mem is not None else ""))
  for k in ("exact_vs_train_step", "exact_vs_vmap_speedup",
            "exact_vs_vmap_max_rel_err", "exact_vs_fastest_torch_speedup",
            *(f"exact_vs_{p}_{w}" for p in torch_peers.PEERS
              for w in ("speedup", "max_rel_err")),
            "exact_memory_vs_train_step", "exact_gflops_per_s",
            "matmul_peak_gflops_per_s", "exact_fraction_of_matmul_peak"):
    if k in out:
      print(f"  {k}: {out[k]:.4g}")
  for layer in out.get("layer_plan", []):
    print(f"    {layer['path']:40s} {layer['rule']:8s} {layer['branch']}")
  return 0
