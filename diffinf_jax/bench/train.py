"""`diffinf bench train`: classifier training-step throughput.

Times the jitted train step (forward + backward + Adam update, BatchNorm in
training mode) after compilation, on random images of `bench.image_size` with
`bench.batch_size`, median over `bench.repeats` repeats.
"""

from __future__ import annotations

import functools
import json
import statistics
import time

import jax
import numpy as np

from diffinf_jax import models
from diffinf_jax import sharding
from diffinf_jax.training import loop
from diffinf_jax.training import state as state_lib
from diffinf_jax.training.methods import ce


def configure(parser):
  parser.add_argument("--steps-per-repeat", type=int, default=3)


def run_bench(config, steps_per_repeat: int = 3) -> dict:
  b = config.bench
  mesh = sharding.data_mesh()
  batch_size = sharding.global_batch_size(b.batch_size, mesh)
  size = int(b.image_size)
  model = models.get_model(config.model)
  tx = state_lib.make_optimizer(config.train, float(config.train.lr))
  state = state_lib.create_train_state(model, jax.random.key(0),
                                       (size, size, 3), tx)
  state = sharding.replicate(state, mesh)
  rng = np.random.default_rng(0)
  batch = sharding.shard_batch({
      "image": rng.uniform(-1, 1, (batch_size, size, size, 3)).astype(
          np.float32),
      "label": rng.integers(0, config.model.num_classes, batch_size).astype(
          np.int32)}, mesh)
  step = jax.jit(functools.partial(loop.train_step,
                                   loss_fn=ce.per_example_loss, flip=True,
                                   crop_pad=0))
  key = jax.random.key(1)
  t0 = time.perf_counter()
  state, m = step(state, batch, key)
  jax.block_until_ready(state.params)
  compile_s = time.perf_counter() - t0
  times = []
  for _ in range(int(b.repeats)):
    t0 = time.perf_counter()
    for _ in range(steps_per_repeat):
      state, m = step(state, batch, key)
    jax.block_until_ready(state.params)
    times.append((time.perf_counter() - t0) / steps_per_repeat)
  return {"samples_per_s": batch_size / statistics.median(times),
          "step_s_median": statistics.median(times), "image_size": size,
          "batch_size": batch_size, "devices": int(mesh.devices.size),
          "compile_s": compile_s, "model": config.model.to_dict()}


def main(config, args):
  out = run_bench(config, args.steps_per_repeat)
  if args.json:
    print(json.dumps({k: out[k] for k in ("samples_per_s", "image_size",
                                          "batch_size", "devices")}))
  else:
    print(f"train step: {out['samples_per_s']:.1f} samples/s (batch "
          f"{out['batch_size']}, {out['image_size']}px, {out['devices']} "
          f"device(s), median of {config.bench.repeats}; compile "
          f"{out['compile_s']:.1f} s)")
  return 0
