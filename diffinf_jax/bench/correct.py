"""`diffinf bench correct`: corrected images per second and peak memory.

Runs the full correction (encode, `correction.num_steps` optimiser steps
through a `diffae.t_decode`-step decode, measurements) on random images of
`data.image_size` with `correction.batch_size`, once with and once without
rematerialisation, after compilation; then on the conditional route with
classifier-free guidance (scale `bench_guidance_scale` unless the config's
diffae.guidance_scale already guides: one UNet call on a doubled batch per
step) against the same route unguided (scale 1: one call). An unconditional
DiffAE is extended with a zero class embedding for the guided timing (same
cost as trained class embeddings). Peak memory is XLA's compiled-memory
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
  z, xt = corrector._encode(x, y)
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


BENCH_GUIDANCE_SCALE = 3.0


def _images_per_s(corrector, x, y) -> float:
  import jax
  corrector(x, y)  # compile
  t0 = time.perf_counter()
  res = corrector(x, y)
  jax.block_until_ready(res["image"])
  return x.shape[0] / (time.perf_counter() - t0)


def guidance_timings(config, guidance, diffae, x, y) -> dict:
  """images/s of the conditional route unguided (w = 1) and guided."""
  from diffinf_jax.correction import engine
  scale = float(config.diffae.guidance_scale)
  if scale in (0.0, 1.0):
    scale = BENCH_GUIDANCE_SCALE
  out = {"guidance_scale": scale}
  for key, w in (("unguided", 1.0), ("guided", scale)):
    cfg = ml_collections.ConfigDict(config.to_dict())
    cfg.correction.route = "conditional"
    cfg.diffae.guidance_scale = w
    out[key] = _images_per_s(engine.Corrector(diffae, guidance, cfg), x, y)
  return out


def run_bench(config, guidance, diffae, conditional=None) -> dict:
  """Timings of the configured route (remat on / off) and, given a
  conditional DiffAE, of guided vs unguided decoding."""
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
    key = "on" if remat else "off"
    out["images_per_s"][key] = _images_per_s(corrector, x, y)
    out["peak_memory_mb"][key] = _memory_mb(corrector, x, y)
  out["remat"] = bool(config.diffae.remat)
  if conditional is not None:
    out["guidance"] = guidance_timings(config, guidance, conditional, x, y)
  return out


def main(config, args):
  from diffinf_jax.correction import engine
  from diffinf_jax.pipeline import correct as correct_stage
  from diffinf_jax import pretrained
  from diffinf_jax.models.guidance import lpips
  import jax
  diffae = correct_stage.load_diffae(config)
  k = int(config.model.num_classes)
  lp = lpips.distance_fn(pretrained.load_lpips())
  guidance = engine.Guidance(
      lpips=lp, classifier_probs=lambda x: jax.nn.softmax(
          jax.numpy.zeros((x.shape[0], k)), -1))
  if not args.skip_guidance:
    from diffinf_jax import pretrained
    g = config.guidance
    guidance.identity = pretrained.identity_embed_fn(g.arcface_weights_dir,
                                                  crop=g.arcface_crop)
    size = int(g.parsing_input_size)
    guidance.parsing = pretrained.parsing_logits_fn(g.parsing_weights_dir,
                                                 (size, size))
  cfg = ml_collections.ConfigDict(config.to_dict())
  cfg.losses.influence = 0.0  # no trained predictor in a bench
  if args.skip_guidance:
    cfg.losses.identity = 0.0
    cfg.losses.structural = 0.0
  from diffinf_jax.models.diffae import runtime as diffae_runtime
  conditional = diffae if diffae.num_classes else diffae_runtime.load_diffae(
      config.diffae.weights_dir, num_classes=k, extend=True)
  if cfg.correction.route == "zshift":
    cfg.correction.route = "latent"  # no probe in a bench: same cost
  out = run_bench(cfg, guidance, diffae, conditional)
  if args.json:
    print(json.dumps(out))
  else:
    for key in ("on", "off"):
      mem = out["peak_memory_mb"][key]
      mem = "n/a" if mem is None else f"{mem:.0f}"
      print(f"correct (remat {key}): {out['images_per_s'][key]:.2f} images/s, "
            f"peak memory {mem} MB (T_decode "
            f"{out['t_decode']}, {out['steps']} steps, batch "
            f"{out['batch_size']}, {out['image_size']} px)")
    gt = out["guidance"]
    print(f"correct (conditional route): unguided {gt['unguided']:.2f} "
          f"images/s, guided (scale {gt['guidance_scale']}) "
          f"{gt['guided']:.2f} images/s")
  return 0
