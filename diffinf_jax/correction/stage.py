"""`diffinf correct`: repair the high-influence training images of a run.

Reads W/influence/scores.npy (top tau flagged), the final classifier
checkpoint, the influence predictor (W/predictor), DiffAE and guidance weights
from the config, and writes W/correct/:

  images/{index:06d}.png   corrected images
  corrected.npz            index, image (float32 [-1, 1]) -- D' reads this
  results.npz              per-sample loss traces, final terms, metrics
  summary.json             num_corrected, lpips_by_class, lpips_mean,
                           identity_cos_mean, p_assigned_before/after,
                           p_high_before/after, oracle_agreement_before/after,
                           grids
  grid_<class>.png         before/after per class

Work is done in chunks of `correction.chunk_size` samples, each written
atomically under W/correct/chunks/, so an interrupted run resumes; the final
files are written only when every chunk is done.
"""

from __future__ import annotations

import logging
import os
import time

import numpy as np
from tqdm import tqdm

from diffinf_jax import chunks
from diffinf_jax import configuration
from diffinf_jax import fileio
from diffinf_jax.correction import outputs


def flagged_indices(workdir: str, tau: float) -> np.ndarray:
  """Dataset indices of the top-tau self-influence scores."""
  from diffinf_jax.influence import detection
  inf = os.path.join(workdir, "influence")
  for name in ("scores.npy", "index.npy"):
    if not os.path.isfile(os.path.join(inf, name)):
      raise FileNotFoundError(f"{inf}/{name}: not found; run `diffinf "
                              "influence` first")
  scores = np.load(os.path.join(inf, "scores.npy"))
  index = np.load(os.path.join(inf, "index.npy"))
  flagged = index[detection.flag_top(scores, tau)]
  if flagged.size == 0:
    raise ValueError(f"influence.tau={tau} flags no sample of {len(index)}; "
                     "raise tau")
  return np.sort(flagged)


def build_guidance(config, workdir: str, image_shape):
  """The frozen networks of the objective, from the config's weight dirs."""
  import jax
  from diffinf_jax import evaluation
  from diffinf_jax.correction import engine
  from diffinf_jax.influence import predictor
  from diffinf_jax.models.guidance import loading
  from diffinf_jax.models.guidance import lpips
  g, l = config.guidance, config.losses
  model, variables = evaluation.load_classifier(
      config, os.path.join(workdir, "train", "checkpoints"), image_shape)

  def classifier_probs(x):
    return jax.nn.softmax(model.apply(variables, x, train=False)[0], -1)

  pred_dir = os.path.join(workdir, "predictor")
  p_high = None
  if os.path.isfile(os.path.join(pred_dir, "params.npz")):
    params, mean, std, cfg = predictor.load(pred_dir)
    p_high = predictor.make_p_high_fn(model, variables, params, mean, std, cfg)
  elif l.w_si:
    raise FileNotFoundError(f"{pred_dir}: no influence predictor; run "
                            "`diffinf predictor` (or set losses.w_si=0)")
  identity = None
  if g.arcface_weights_dir or l.w_id:
    identity = loading.identity_embed_fn(g.arcface_weights_dir,
                                         crop=g.arcface_crop)
  parsing = None
  if g.parsing_weights_dir or (l.w_reg and l.lambda_struct):
    size = int(g.parsing_input_size)
    parsing = loading.parsing_logits_fn(g.parsing_weights_dir, (size, size))
  lp_params = lpips.load_params(g.lpips_weights)
  return engine.Guidance(lpips=lpips.distance_fn(lp_params),
                         classifier_probs=classifier_probs, identity=identity,
                         parsing=parsing, p_high=p_high)


def load_diffae(config):
  from diffinf_jax import diffae_api
  return diffae_api.load_diffae(config.diffae.weights_dir)


def _pad(x: np.ndarray, n: int) -> np.ndarray:
  """Pads the leading axis to n by repeating the last row (static shapes)."""
  if len(x) == n:
    return x
  return np.concatenate([x, np.repeat(x[-1:], n - len(x), axis=0)])


def correct_all(corrector, images, labels, batch_size, store, chunk_size):
  """Runs the corrector over all samples chunk by chunk (resumable)."""
  parts = []
  slices = chunks.split_chunks(len(labels), chunk_size)
  for k, sl in enumerate(tqdm(slices, desc="correct", leave=False,
                              disable=None)):
    done = store.load(k)
    if done is None:
      pieces = []
      for start in range(sl.start, sl.stop, batch_size):
        stop = min(start + batch_size, sl.stop)
        out = corrector(_pad(images[start:stop], batch_size),
                        _pad(labels[start:stop], batch_size))
        n = stop - start
        pieces.append({key: (v[:, :n] if key.startswith("trace_") else v[:n])
                       for key, v in out.items()})
      done = {key: np.concatenate([p[key] for p in pieces],
                                  axis=1 if key.startswith("trace_") else 0)
              for key in pieces[0]}
      store.save(k, done)
    parts.append(done)
  return {key: np.concatenate([p[key] for p in parts],
                              axis=1 if key.startswith("trace_") else 0)
          for key in parts[0]}


def run(config, workdir: str, *, diffae=None, guidance=None) -> dict:
  """The correction stage; `diffae` / `guidance` may be injected (tests)."""
  import jax
  from diffinf_jax import data
  from diffinf_jax import evaluation
  from diffinf_jax.correction import engine
  t0 = time.time()
  ds = data.get_dataset(config, workdir)
  flagged = flagged_indices(workdir, float(config.influence.tau))
  pos = ds.position_of(flagged)
  images = data.to_float_image(ds.image[pos])
  labels = ds.noisy_label[pos].astype(np.int32)
  flipped = ds.flipped[pos]
  if diffae is None:
    diffae = load_diffae(config)
  if guidance is None:
    guidance = build_guidance(config, workdir, ds.image.shape[1:])
  corrector = engine.Corrector(diffae, guidance, config)
  r = config.correction
  if int(r.batch_size) % jax.device_count():
    logging.info("correction.batch_size=%d is not a multiple of the %d "
                 "devices: running unsharded", r.batch_size,
                 jax.device_count())
  out_dir = os.path.join(workdir, "correct")
  fp = configuration.config_hash(config, ("diffae", "guidance", "losses",
                                          "correction", "influence", "train",
                                          "model", "data", "noise", "seed"))
  store = chunks.ChunkStore(os.path.join(out_dir, "chunks"), fp)
  res = correct_all(corrector, images, labels, int(r.batch_size), store,
                    int(r.chunk_size))
  res.update(index=flagged, label=labels, flipped=flipped,
             clean_label=ds.clean_label[pos].astype(np.int32))
  names = evaluation.CLASS_NAMES.get(ds.task, tuple(
      str(k) for k in range(ds.num_classes)))
  oracle_before = oracle_after = None
  if r.get("oracle", True) and np.any(ds.flipped):
    from diffinf_jax.correction import oracle
    o_model, o_vars = oracle.get_oracle(config, ds)
    oracle_before = oracle.predict(o_model, o_vars, images).argmax(1)
    oracle_after = oracle.predict(o_model, o_vars, res["image"]).argmax(1)
    res["oracle_before"], res["oracle_after"] = oracle_before, oracle_after
  grids = []
  scale = max(1, 96 // images.shape[1])
  for k, name in enumerate(names):
    sel = np.flatnonzero(labels == k)[:16]
    if sel.size:
      rel = f"grid_{name}.png"
      outputs.before_after_grid(images[sel], res["image"][sel],
                                os.path.join(out_dir, rel), scale)
      grids.append(os.path.join("correct", rel))
  summary = outputs.summarise(res, names, oracle_before, oracle_after)
  summary["grids"] = grids
  summary["seconds"] = round(time.time() - t0, 2)
  outputs.write_pngs(os.path.join(out_dir, "images"), flagged, res["image"])
  fileio.save_npz(os.path.join(out_dir, "results.npz"),
                  **{k: v for k, v in res.items() if k != "image"})
  fileio.save_npz(os.path.join(out_dir, "corrected.npz"), index=flagged,
                  image=res["image"].astype(np.float32))
  fileio.write_json(os.path.join(out_dir, "summary.json"), summary)
  logging.info("corrected %d images in %.1f s", len(flagged),
               summary["seconds"])
  return summary
