"""`diffinf bench correct`: corrected images per second and peak memory.

Runs the full correction (encode, `correction.num_steps` optimiser steps
through a `diffae.t_decode`-step decode, measurements) on random images of
`data.image_size` with `correction.batch_size`, once with and once without
rematerialisation, after compilation. Peak memory is XLA's compiled-memory
estimate of the optimisation function (arguments + outputs + temporaries).
"""

from __future__ import annotations

import json
import time

import ml_collections
import numpy as np


def configure(parser):
  parser.add_argument("--skip-guidance", action="store_true",
                      help="only LPIPS + reconstruction (no identity/parsing "
                           "/predictor networks)")


def _memory_mb(corrector, x, y) -> float | None:
  from diffinf_jax.correction import optimize
  z, xt = corrector._encode(x)
  batch = corrector._ref(x, y)
  state = optimize.init_state({"z_sem": z, "x_T": xt}, corrector._opt,
                              bool(corrector.config.correction.optimize_x_T))
  try:
    m = corrector._run.lower(state, batch).compile().memory_analysis()
  except Exception:  # not every backend reports memory
    return None
  if m is None:
    return None
  total = (m.argument_size_in_bytes + m.output_size_in_bytes +
           m.temp_size_in_bytes)
  return total / 2**20


def run_bench(config, guidance, diffae) -> dict:
  import jax
  from diffinf_jax.correction import engine
  r = config.correction
  b, s = int(r.batch_size), int(config.data.image_size)
  x = np.random.default_rng(0).uniform(-1, 1, (b, s, s, 3)).astype(np.float32)
  y = np.zeros(b, np.int32)
  out = {"t_decode": int(config.diffae.t_decode), "steps": int(r.num_steps),
         "batch_size": b, "image_size": s, "images_per_s": {},
         "peak_memory_mb": {}}
  for remat in (True, False):
    cfg = ml_collections.ConfigDict(config.to_dict())
    cfg.diffae.remat = remat
    corrector = engine.Corrector(diffae, guidance, cfg)
    corrector(x, y)  # compile
    t0 = time.perf_counter()
    res = corrector(x, y)
    jax.block_until_ready(res["image"])
    key = "on" if remat else "off"
    out["images_per_s"][key] = b / (time.perf_counter() - t0)
    out["peak_memory_mb"][key] = _memory_mb(corrector, x, y)
  out["remat"] = bool(config.diffae.remat)
  return out


def main(args):
  from diffinf_jax.correction import engine
  from diffinf_jax.correction import stage
  from diffinf_jax.models.guidance import lpips
  from diffinf_jax.stages import common
  import jax
  config = common.load_config(args)
  diffae = stage.load_diffae(config)
  k = int(config.model.num_classes)
  lp = lpips.distance_fn()
  guidance = engine.Guidance(
      lpips=lp, classifier_probs=lambda x: jax.nn.softmax(
          jax.numpy.zeros((x.shape[0], k)), -1))
  if not args.skip_guidance:
    from diffinf_jax.models.guidance import loading
    g = config.guidance
    guidance.identity = loading.identity_embed_fn(g.arcface_weights_dir,
                                                  crop=g.arcface_crop)
    size = int(g.parsing_input_size)
    guidance.parsing = loading.parsing_logits_fn(g.parsing_weights_dir,
                                                 (size, size))
  cfg = ml_collections.ConfigDict(config.to_dict())
  cfg.losses.w_si = 0.0  # no trained predictor in a bench
  if args.skip_guidance:
    cfg.losses.w_id = 0.0
    cfg.losses.lambda_struct = 0.0
  out = run_bench(cfg, guidance, diffae)
  if args.json:
    print(json.dumps(out))
  else:
    for key in ("on", "off"):
      print(f"correct (remat {key}): {out['images_per_s'][key]:.2f} images/s, "
            f"peak memory {out['peak_memory_mb'][key]} MB (T_decode "
            f"{out['t_decode']}, {out['steps']} steps, batch "
            f"{out['batch_size']}, {out['image_size']} px)")
  return 0
