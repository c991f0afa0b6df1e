"""`diffinf bench diffae`: encode / decode / gradient-through-decode throughput.

Random weights of `diffae.preset` (throughput does not depend on the values),
`bench.batch_size` images, `diffae.t_encode` / `diffae.t_decode` steps; each
figure is the median over `bench.repeats` after compilation. Peak memory is
XLA's compiled-memory estimate (arguments + outputs + temporaries).
"""

from __future__ import annotations

import json
import statistics
import time

# jax is imported inside the functions: `diffinf --help` imports every bench
# module to build its parser and must stay fast.


def configure(parser):
  pass


def _time(fn, args, repeats):
  import jax
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t0)
  return statistics.median(times)


def _memory_mb(fn, args):
  try:
    m = fn.lower(*args).compile().memory_analysis()
    return (m.argument_size_in_bytes + m.output_size_in_bytes +
            m.temp_size_in_bytes) / 2**20
  except Exception:
    return None


def run_bench(config) -> dict:
  """Figures for config.diffae.preset (random weights), see module doc."""
  import jax
  import jax.numpy as jnp
  import numpy as np
  from diffinf_jax.models.diffae import runtime as diffae_runtime
  from diffinf_jax.models import diffae
  cfg = diffae.get_preset(config.diffae.preset)
  model = diffae.create_model(cfg)
  variables = diffae.init_variables(model, jax.random.key(0))
  ae = diffae_runtime.DiffAEModel(cfg, variables)
  b = int(config.bench.batch_size)
  te, td = int(config.diffae.t_encode), int(config.diffae.t_decode)
  rep = int(config.bench.repeats)
  x0 = jnp.asarray(np.random.default_rng(0).uniform(
      -1, 1, (b, cfg.image_size, cfg.image_size, cfg.in_channels)),
                   jnp.float32)
  enc = jax.jit(lambda x: ae.encode(x, te))
  z, x_T = enc(x0)
  out = {"t_encode": te, "t_decode": td, "image_size": cfg.image_size,
         "batch_size": b, "preset": config.diffae.preset,
         "encode_images_per_s": b / _time(enc, (x0,), rep),
         "decode_images_per_s": {}, "grad_decode_images_per_s": {},
         "peak_memory_mb": {}}
  for remat in (True, False):
    key = "remat" if remat else "no_remat"
    dec = jax.jit(lambda z, xt: ae.decode(z, xt, td, remat=remat))
    grad = jax.jit(jax.grad(lambda z, xt: jnp.sum(
        ae.decode(z, xt, td, remat=remat) ** 2)))
    out["decode_images_per_s"][key] = b / _time(dec, (z, x_T), rep)
    out["grad_decode_images_per_s"][key] = b / _time(grad, (z, x_T), rep)
    out["peak_memory_mb"][f"decode_{key}"] = _memory_mb(dec, (z, x_T))
    out["peak_memory_mb"][f"grad_decode_{key}"] = _memory_mb(grad, (z, x_T))
  out["peak_memory_mb"]["encode"] = _memory_mb(enc, (x0,))
  return out


def main(config, args):
  out = run_bench(config)
  if args.json:
    print(json.dumps(out))
  else:
    print(f"DiffAE {out['preset']} {out['image_size']}px batch "
          f"{out['batch_size']}: encode (T={out['t_encode']}) "
          f"{out['encode_images_per_s']:.2f} img/s")
    for key in ("remat", "no_remat"):
      print(f"  {key}: decode (T={out['t_decode']}) "
            f"{out['decode_images_per_s'][key]:.2f} img/s, grad through "
            f"decode {out['grad_decode_images_per_s'][key]:.2f} img/s, peak "
            f"{out['peak_memory_mb']['grad_decode_' + key]} MB")
  return 0
