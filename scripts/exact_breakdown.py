"""Where `exact` spends its time (the README's Benchmarks argument).

  python scripts/exact_breakdown.py [--image_size 128]

Times, for the bench's ResNet-18 + head batch: the eval forward, `exact`, and
`exact` with every conv norm replaced by a plain sum of g (what remains is
the forward plus the input-gradient backward that any exact method must run);
then one 3x3 conv layer forward as XLA's convolution vs as a patch matmul.
"""

import argparse
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from diffinf_jax import configuration
from diffinf_jax.bench import influence as bench
from diffinf_jax.influence import layer_rules
from diffinf_jax.influence import per_example


def seconds(fn, *args, repeats=5):
  fn = jax.jit(fn)
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t0)
  return float(np.median(times))


def conv(x, w):
  return lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)),
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))


def patch_matmul(x, w):
  b, h, wd, c = x.shape
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  cols = [xp[:, i:i + h, j:j + wd] for i in range(3) for j in range(3)]
  p = jnp.concatenate(cols, -1).reshape(-1, 9 * c)
  return (p @ w.reshape(9 * c, -1)).reshape(b, h, wd, -1)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--image_size", type=int, default=128)
  args = parser.parse_args()
  config = configuration.get_config("configs/demo.py", [
      f"bench.image_size={args.image_size}", "model.stem=imagenet",
      "model.width_multiplier=1.0", "model.head_hidden=256"])
  model, variables, batch = bench.bench_inputs(config)
  fwd = functools.partial(model.apply, train=False)
  print(f"forward               {seconds(fwd, variables, batch['image']):.3f} s")
  exact = per_example.make_sq_norm_fn(model, jit=False)
  print(f"exact                 {seconds(exact, variables, batch):.3f} s")
  layer_rules.conv_sq_norms = lambda x, g, spec, rule=None: jnp.sum(
      g, axis=tuple(range(1, g.ndim)))
  no_norms = per_example.make_sq_norm_fn(model, jit=False)
  print(f"exact, no conv norms  {seconds(no_norms, variables, batch):.3f} s")
  x = jax.random.normal(jax.random.key(0), (64, 32, 32, 64))
  w = 0.05 * jax.random.normal(jax.random.key(1), (3, 3, 64, 64))
  gflop = 2 * 64 * 32 * 32 * 9 * 64 * 64 / 1e9
  t_conv, t_mm = seconds(conv, x, w), seconds(patch_matmul, x, w)
  print(f"3x3 conv 64x32x32x64: XLA {t_conv * 1e3:.1f} ms "
        f"({gflop / t_conv:.0f} GFLOP/s), patch matmul {t_mm * 1e3:.1f} ms "
        f"({gflop / t_mm:.0f} GFLOP/s)")


if __name__ == "__main__":
  main()
