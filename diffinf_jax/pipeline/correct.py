"""`diffinf correct`: repair the flagged images by DiffAE latent optimisation."""

from __future__ import annotations

import logging
import os

import numpy as np

from diffinf_jax import chunks
from diffinf_jax import configuration
from diffinf_jax import fileio
from diffinf_jax import plots
from diffinf_jax import progress
from diffinf_jax import workdir as wd
from diffinf_jax.correction import summary as summary_lib
from diffinf_jax.data import pipeline as data_pipeline
from diffinf_jax.pipeline import data as data_stage
from diffinf_jax.pipeline import judge as judge_stage
from diffinf_jax.pipeline import runner

NAME = "correct"
HELP = "repair the flagged images by DiffAE latent optimisation (D')"
DESCRIPTION = """Repair the flagged training images (every flagged set of W/detect):
encode each to (z_sem, x_T) with the DiffAE, optimise the latents through a
rematerialised DDIM decode under the identity, structural, perceptual and
influence losses (config sections losses, correction), and keep labels
unchanged.

Needs W/detect, W/predictor (when losses.influence > 0) and the weights in
config.diffae.weights_dir / config.guidance.*_weights_dir. Writes
W/correct/images/*.png, corrected.npz (index, image), results.npz,
summary.json and before/after grids per class. Resumable per chunk
(W/correct/chunks/). When the run has a judge (`diffinf judge`), it says for
every image whether it shows its assigned label, before and after."""
DEPENDS = ("data", "train", "detect")
OPTIONAL_DEPENDS = ("predictor", "judge")
SECTIONS = ("diffae", "guidance", "losses", "correction")


def load_diffae(config):
  from diffinf_jax.models.diffae import runtime as diffae_runtime
  return diffae_runtime.load_from_config(config.diffae)


def fit_latent_probe(config, diffae, ds):
  """The zshift route's linear probe on the training split's semantic codes
  and ASSIGNED labels (None for the other routes)."""
  import jax
  from diffinf_jax.correction import latent_shift
  if config.correction.route != "zshift":
    return None
  arrays = ds.arrays("train")
  encode = jax.jit(diffae.encode_semantic)
  bs = int(config.correction.batch_size)
  images = arrays["image"]
  z = np.concatenate([np.asarray(encode(_pad(images[i:i + bs], bs)))[
      :len(images[i:i + bs])] for i in range(0, len(images), bs)])
  return latent_shift.fit_probe(
      z, arrays["label"], len(ds.class_names),
      inverse_reg=float(config.correction.probe_inverse_reg))


def check_image_size(diffae, image_size: int, weights_dir: str) -> None:
  """The DiffAE must have been trained at the data's image size."""
  size = int(diffae.config.image_size)
  if size != int(image_size):
    raise ValueError(
        f"diffae.weights_dir={weights_dir!r} holds a {size} px DiffAE but "
        f"data.image_size={image_size}: use DiffAE weights made for "
        f"{image_size} px images (`diffinf train-diffae`) or set "
        f"data.image_size={size}")


def build_guidance(config, workdir: str, image_shape, with_predictor: bool):
  """The frozen networks of the objective, from the config's weight dirs."""
  import jax
  from diffinf_jax.correction import engine
  from diffinf_jax.influence import predictor
  from diffinf_jax import pretrained
  from diffinf_jax.models.guidance import lpips
  g, l = config.guidance, config.losses
  model, variables = wd.load_classifier(config, wd.train_dir(workdir),
                                        image_shape)

  def classifier_probs(x):
    return jax.nn.softmax(model.apply(variables, x, train=False)[0], -1)

  p_high = None
  if with_predictor:
    params, mean, std, cfg = wd.load_predictor(workdir)
    p_high = predictor.make_p_high_fn(model, variables, params, mean, std, cfg)
  identity = None
  if g.arcface_weights_dir or l.identity:
    identity = pretrained.identity_embed_fn(g.arcface_weights_dir,
                                         crop=g.arcface_crop)
  parsing = None
  if g.parsing_weights_dir or l.structural:
    size = int(g.parsing_input_size)
    parsing = pretrained.parsing_logits_fn(g.parsing_weights_dir, (size, size))
  lp_params = pretrained.load_lpips(g.lpips_weights)
  return engine.Guidance(lpips=lpips.distance_fn(lp_params),
                         classifier_probs=classifier_probs, identity=identity,
                         parsing=parsing, p_high=p_high)


def _pad(x: np.ndarray, n: int) -> np.ndarray:
  """Pads the leading axis to n by repeating the last row (static shapes)."""
  if len(x) == n:
    return x
  return np.concatenate([x, np.repeat(x[-1:], n - len(x), axis=0)])


def _join(parts: list[dict]) -> dict:
  """Concatenates per-batch results (traces along their sample axis 1)."""
  return {key: np.concatenate([p[key] for p in parts],
                              axis=1 if key.startswith("trace_") else 0)
          for key in parts[0]}


def correct_all(corrector, images, labels, batch_size, store, chunk_size):
  """Runs the corrector over all samples chunk by chunk (resumable)."""
  slices = chunks.split_chunks(len(labels), chunk_size)
  done = {k: store.load(k) for k in range(len(slices))}
  todo = [k for k, v in done.items() if v is None]
  for k in progress.track(todo, total=len(slices),
                          done=len(slices) - len(todo), desc="correct",
                          unit="chunk"):
    sl, pieces = slices[k], []
    for start in range(sl.start, sl.stop, batch_size):
      stop = min(start + batch_size, sl.stop)
      out = corrector(_pad(images[start:stop], batch_size),
                      _pad(labels[start:stop], batch_size))
      n = stop - start
      pieces.append({key: (v[:, :n] if key.startswith("trace_") else v[:n])
                     for key, v in out.items()})
    done[k] = _join(pieces)
    store.save(k, done[k])
  return _join([done[k] for k in range(len(slices))])


def _write_grids(out_dir, images, corrected, labels, class_names) -> list:
  grids = []
  scale = max(1, 96 // images.shape[1])
  for k, name in enumerate(class_names):
    sel = np.flatnonzero(labels == k)[:16]
    if sel.size:
      rel = f"grid_{name}.png"
      plots.before_after_grid(images[sel], corrected[sel],
                              os.path.join(out_dir, rel), scale)
      grids.append(wd.rel(NAME, rel))
  return grids


def ablation(config, res: dict, judge_fn, make_corrector, images,
             labels) -> list[dict]:
  """Rows of W/correct/ablation.csv (issue: the cost of each part).

  Reconstruction only, the route's start (conditioning only) and the full
  objective come from the main run; with correction.ablation the full
  objective is rerun without L_si and without L_id (whole batches, not
  resumable: an ablation, not a product).
  """
  def judged(x):
    return None if judge_fn is None else judge_fn(x)

  rows = [summary_lib.ablation_row(name, res, prefix, labels, res["flipped"],
                                   judged(res[key]))
          for name, prefix, key in (
              ("reconstruction only", "recon", "reconstruction"),
              (f"conditioning only ({config.correction.route})", "start",
               "start"),
              ("full objective", "after", "image"))]
  if not config.correction.ablation:
    return rows
  bs = int(config.correction.batch_size)
  variants = (("full without L_si", "influence"),
              ("full without L_id", "identity"))
  for name, term in progress.track(variants, total=len(variants), done=0,
                                   desc="correct ablation", unit="variant"):
    c = config.copy_and_resolve_references()
    c.losses[term] = 0.0
    corrector = make_corrector(c)
    parts = [corrector(_pad(images[i:i + bs], bs), _pad(labels[i:i + bs], bs))
             for i in range(0, len(labels), bs)]
    out = {k: np.concatenate([p[k] for p in parts])[:len(labels)]
           for k in ("image", "after_lpips", "after_identity_cos",
                     "after_p_high") if k in parts[0]}
    rows.append(summary_lib.ablation_row(name, out, "after", labels,
                                         res["flipped"], judged(out["image"])))
  return rows


def _write_ablation(out_dir: str, rows: list[dict]) -> None:
  cols = summary_lib.ABLATION_COLUMNS
  fileio.write_text(os.path.join(out_dir, "ablation.csv"),
                    fileio.csv_text(rows, cols))
  fmt = lambda v: "" if v is None else (f"{v:.3f}" if isinstance(v, float)
                                        else str(v))
  md = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
  md += ["| " + " | ".join(fmt(r[c]) for c in cols) + " |" for r in rows]
  fileio.write_text(os.path.join(out_dir, "ablation.md"),
                    "\n".join(md) + "\n")


def run(config, workdir: str, *, diffae=None, guidance=None) -> dict:
  """The correction stage; `diffae` / `guidance` may be injected (tests)."""
  from diffinf_jax.correction import engine
  ds = data_stage.load(config, workdir)
  flagged = wd.all_flagged_indices(workdir)
  pos = ds.position_of(flagged)
  images = data_pipeline.to_float_image(ds.image[pos])
  labels = ds.noisy_label[pos].astype(np.int32)
  with_predictor = bool(config.losses.influence)
  if with_predictor and not runner.up_to_date("predictor", config, workdir):
    raise FileNotFoundError(
        f"{wd.stage_dir(workdir, 'predictor')}: no current influence "
        "predictor; run `diffinf predictor` (or set losses.influence=0)")
  if diffae is None:
    diffae = load_diffae(config)
    check_image_size(diffae, ds.image.shape[1], config.diffae.weights_dir)
  if guidance is None:
    guidance = build_guidance(config, workdir, ds.image.shape[1:],
                              with_predictor)
  corrector = engine.Corrector(diffae, guidance, config,
                               probe=fit_latent_probe(config, diffae, ds))
  r = config.correction
  out_dir = wd.stage_dir(workdir, NAME)
  # A chunk is reused only for the same objective, classifier, flagged set
  # and predictor (the judge plays no part in the corrected images).
  fp = configuration.config_hash({"v": [
      configuration.config_hash(config, SECTIONS),
      *(runner.read_stamp(workdir, s)["stamp"] for s in DEPENDS),
      runner.read_stamp(workdir, "predictor")["stamp"] if with_predictor
      else None]}, ("v",))
  store = chunks.ChunkStore(os.path.join(out_dir, "chunks"), fp)
  res = correct_all(corrector, images, labels, int(r.batch_size), store,
                    int(r.chunk_size))
  res.update(index=flagged, label=labels, flipped=ds.flipped[pos],
             clean_label=ds.clean_label[pos].astype(np.int32))
  judged = None
  if runner.up_to_date("judge", config, workdir):
    judge = judge_stage.load(config, workdir, ds)
    if judge is not None:
      judged = (judge.predict(flagged, images).argmax(1),
                judge.predict(flagged, res["image"]).argmax(1))
      res["judge_before"], res["judge_after"] = judged
  summary = summary_lib.summarise(res, ds.class_names,
                                  *(judged or (None, None)))
  judge_fn = None if judged is None else (
      lambda x: judge.predict(flagged, x).argmax(1))
  ablation_rows = ablation(config, res, judge_fn,
                           lambda c: engine.Corrector(
                               diffae, guidance, c, probe=corrector.probe),
                           images, labels)
  _write_ablation(out_dir, ablation_rows)
  summary["ablation"] = wd.rel(NAME, "ablation.md")
  summary["grids"] = _write_grids(out_dir, images, res["image"], labels,
                                  ds.class_names)
  plots.write_pngs(os.path.join(out_dir, "images"), flagged, res["image"])
  fileio.save_npz(os.path.join(out_dir, "results.npz"),
                  **{k: v for k, v in res.items()
                     if k not in ("image", "reconstruction", "start")})
  fileio.save_npz(wd.correct_file(workdir, "corrected.npz"), index=flagged,
                  image=res["image"].astype(np.float32),
                  reconstruction=res["reconstruction"].astype(np.float32))
  fileio.write_json(os.path.join(out_dir, "summary.json"), summary)
  logging.info("corrected %d images", len(flagged))
  return summary


def summary_line(s: dict) -> str:
  line = (f"correct: {s['num_corrected']} images, LPIPS {s['lpips_mean']:.4f}, "
          f"p(assigned) {s['p_assigned_before']:.3f} -> "
          f"{s['p_assigned_after']:.3f}")
  if s.get("p_high_before") is not None:
    line += f", p_high {s['p_high_before']:.3f} -> {s['p_high_after']:.3f}"
  if s.get("judge_agreement_flipped_before") is not None:
    line += (f"; judge agrees on flipped {s['judge_agreement_flipped_before']:.3f}"
             f" -> {s['judge_agreement_flipped_after']:.3f}, on correctly "
             f"labelled {s['judge_agreement_clean_before']:.3f} -> "
             f"{s['judge_agreement_clean_after']:.3f}")
  return line
