"""`diffinf detect`: which training labels are suspicious; the flagged set."""

from __future__ import annotations

import logging
import os
import time

import numpy as np

from diffinf_jax import checkpointing
from diffinf_jax import fileio
from diffinf_jax import models
from diffinf_jax import plots
from diffinf_jax import workdir as wd
from diffinf_jax.data import refined
from diffinf_jax.detection import checkpoints as ckpt_select
from diffinf_jax.detection import crossfit
from diffinf_jax.detection import flagging
from diffinf_jax.detection import flip_metrics
from diffinf_jax.detection import folds as folds_lib
from diffinf_jax.detection import pruned
from diffinf_jax.detection import registry
from diffinf_jax.models import classifier
from diffinf_jax.pipeline import data as data_stage
from diffinf_jax.pipeline import runner

NAME = "detect"
HELP = ("score every training label (TracIn, last layer, small loss, "
        "confident learning) and choose the flagged set")
DESCRIPTION = """Scores every training sample with each detector of detection.detectors
(higher = more likely mislabelled) and flags the top set of detection.flag_by
(detection.num_flagged: tau = the top ceil(tau N), as in the paper, or auto =
cleanlab's estimate of the number of wrong labels):

  self_influence      TracIn over the checkpoints of W/influence (all, the
                      first k, or those before the network fits the assigned
                      labels: detection.tracin)
  last_layer          TracIn of the last Dense layer only
  small_loss          cross-entropy of the final noisy classifier
  confident_learning  cleanlab's label quality of OUT-OF-SAMPLE probabilities:
                      K-fold cross-fitting (detection.crossfit) of a logistic
                      model on frozen features (pixels, ImageNet VGG16) or of
                      the project's classifier; every sample is predicted by
                      a model that never trained on it
  ensemble            the mean rank of detection.ensemble.members

Writes W/detect/: flagged.npz (the flagged set and detection.extra_flag_sets),
scores.npz (per detector), pred_probs.npy + folds.npy + index.npy (the
out-of-sample probabilities), issues.json (cleanlab's issue count and noise
rate estimate), table.csv/.md (per detector: precision@tau, precision@k,
recall, AUROC, seconds; TracIn per checkpoint), histograms.png,
top_flagged.png. Cross-fitting with the classifier resumes per fold."""
DEPENDS = ("data", "train")
OPTIONAL_DEPENDS = ("influence",)
SECTIONS = ("detection", "seed")
TABLE_COLUMNS = ("detector", "num_flagged", "precision", "precision_at_k",
                 "recall", "auroc", "seconds")


def _needs_crossfit(config) -> bool:
  d = config.detection
  names = set(d.detectors) | {d.flag_by} | set(d.ensemble.members)
  sets = [s.split(":")[1] for s in d.extra_flag_sets]
  return ("confident_learning" in names or d.num_flagged == "auto"
          or "auto" in sets)


def _frozen_features(config, images: np.ndarray) -> np.ndarray:
  """[N, D] label-free features for the logistic cross-fit."""
  import jax
  from diffinf_jax import pretrained
  from diffinf_jax.detection import features
  from diffinf_jax.models.guidance import lpips
  c = config.detection.crossfit
  blocks = []
  for name in c.features:
    if name == "pixels":
      blocks.append(features.flatten_pixels(images))
    elif name == "vgg16_relu3_3":
      vgg = pretrained.load_lpips(config.guidance.lpips_weights)["vgg"]
      size, grid = int(c.vgg_input_size), int(c.feature_grid)

      @jax.jit
      def fn(x):
        x = jax.image.resize(x, (x.shape[0], size, size, 3), "bilinear")
        return features.grid_pool(lpips.vgg_activations(vgg, x, 2), grid)
      out = [np.asarray(fn(images[s:s + 64]))
             for s in range(0, len(images), 64)]
      blocks.append(np.concatenate(out).astype(np.float32))
  return np.concatenate(blocks, axis=1)


def _classifier_fit_predict(config, dataset, workdir: str, arrays: dict):
  """fit_predict that trains config.model on the given rows (assigned
  labels), resumable per fold (W/detect/crossfit/<hash of rows>/)."""
  import hashlib
  import ml_collections
  from diffinf_jax.training import loop
  c = config.detection.crossfit
  cfg = ml_collections.ConfigDict(config.to_dict())
  cfg.train.num_epochs = int(c.num_epochs)
  cfg.train.save_every_epochs = int(c.num_epochs)
  if float(c.width_multiplier) > 0:
    cfg.model.width_multiplier = float(c.width_multiplier)
  index = arrays["index"]

  def fit_predict(train_rows, held_rows):
    key = hashlib.sha256(np.asarray(train_rows, np.int64).tobytes()
                         ).hexdigest()[:16]
    out = wd.path(workdir, "detect", "crossfit", key)
    probs_path = os.path.join(out, "held_probs.npy")
    if os.path.isfile(probs_path):
      return np.load(probs_path)
    keep = np.zeros(len(index), bool)
    keep[train_rows] = True
    subset = refined.remove_indices(dataset, index[~keep])
    loop.train(cfg, subset, out)
    model, variables = wd.load_classifier(cfg, out,
                                          arrays["image"].shape[1:])
    probs = classifier.predict_dataset(model.apply, variables,
                                       arrays["image"][held_rows], 256)
    probs = probs.astype(np.float64)
    probs /= probs.sum(1, keepdims=True)
    fileio.save_npy(probs_path, probs)
    return probs
  return fit_predict


def cross_fit(config, workdir: str, dataset, arrays: dict):
  """(OutOfSample, LabelIssues) of the training split, the chosen model."""
  c = config.detection.crossfit
  labels = arrays["label"]
  k = int(config.model.num_classes)
  folds = folds_lib.assign_folds(labels, c.num_folds, c.seed)
  if c.model == "logistic":
    fp = crossfit.make_logistic_fit_predict(
        _frozen_features(config, arrays["image"]), labels, k,
        inverse_reg=float(c.inverse_reg), max_iter=int(c.max_iter))
  else:
    fp = _classifier_fit_predict(config, dataset, workdir, arrays)
  return pruned.cross_fit_rounds(labels, folds, fp, k, int(c.rounds))


def _checkpoint_inputs(config, workdir: str, arrays: dict) -> dict:
  """Per checkpoint: head features and probabilities (last_layer), training
  accuracy on the assigned labels (before_fit); the final model's probs."""
  ckpt_dir = wd.checkpoint_dir(wd.train_dir(workdir))
  found = checkpointing.list_checkpoints(ckpt_dir)
  model = models.get_model(config.model)
  abstract = classifier.abstract_variables(model, arrays["image"].shape[1:])
  feats, probs = [], []
  for c in found:
    v = checkpointing.restore_variables(ckpt_dir, int(c["step"]), abstract)
    f, p = classifier.features_and_probs(model, v, arrays["image"], 256)
    feats.append(f)
    probs.append(p)
  acc = [float(np.mean(p.argmax(1) == arrays["label"])) for p in probs]
  return {"head_features": np.stack(feats), "head_probs": np.stack(probs),
          "learning_rates": [float(c["learning_rate"]) for c in found],
          "train_accuracy": acc, "probs": probs[-1]}


def _flag_set(spec: str, scores: dict, issues, n: int, tau: float
              ) -> np.ndarray:
  """[N] bool mask of the flag set `DETECTOR:TAU|auto`."""
  name, _, size = spec.partition(":")
  if size == "auto":
    count = flagging.num_flagged("auto", n, issues=issues)
  else:
    count = flagging.num_flagged("tau", n, tau=float(size) if size else tau)
  if name not in scores:
    raise ValueError(f"detection flag set {spec!r}: {name!r} is not among "
                     f"detection.detectors {sorted(scores)}")
  return flagging.flag_top(scores[name], count)


def primary_set(config) -> str:
  d = config.detection
  return f"{d.flag_by}:{'auto' if d.num_flagged == 'auto' else d.tau}"


def _table(scored: list, flipped: np.ndarray, count: int,
           seconds: dict) -> list[dict]:
  """One row per (name, score): metrics of its top `count` samples."""
  rows = []
  for name, score in scored:
    m = flip_metrics.detection_metrics(score, flipped, count)
    rows.append({"detector": name, **{k: m[k] for k in TABLE_COLUMNS[1:-1]},
                 "seconds": seconds.get(name)})
  return rows


def _markdown(rows: list[dict], tau: float) -> str:
  lines = ["| detector | flagged | precision | precision@k | recall | AUROC "
           "| seconds |", "| --- | --- | --- | --- | --- | --- | --- |"]
  fmt = lambda v: "n/a" if v is None or v != v else (
      f"{v:.3f}" if isinstance(v, float) else str(v))
  for r in rows:
    cells = [fmt(r[c]) for c in TABLE_COLUMNS[:-1]]
    cells.append("" if r["seconds"] is None else f"{r['seconds']:.1f}")
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) + (
      f"\n\nPrecision of the top {tau:.0%} (the flagged set size of each "
      "row), precision@k at k = the number of flipped labels, recall of the "
      "flagged set, AUROC of the score as a flip detector.\n")


def run(config, workdir: str) -> dict:
  d = config.detection
  dataset = data_stage.load(config, workdir)
  arrays = dataset.arrays("train")
  labels, n = arrays["label"], len(arrays["label"])
  seconds, oos, issues = {}, None, None
  if _needs_crossfit(config):
    t0 = time.time()
    oos, issues = cross_fit(config, workdir, dataset, arrays)
    seconds["confident_learning"] = round(time.time() - t0, 2)
    logging.info("detect: cleanlab finds %d issues, noise rate %.3f",
                 issues.num_issues, issues.noise_rate)
  t0 = time.time()
  ck = _checkpoint_inputs(config, workdir, arrays)
  per_checkpoint = None
  if "self_influence" in set(d.detectors) | {d.flag_by} | set(
      d.ensemble.members):
    if not runner.up_to_date("influence", config, workdir):
      raise FileNotFoundError(f"{wd.stage_dir(workdir, 'influence')}: "
                              "self_influence needs current TracIn scores; "
                              "run `diffinf influence`")
    per_checkpoint = wd.load_influence(workdir, arrays["index"])[
        "per_checkpoint"]
  selected = ckpt_select.select_checkpoints(
      len(ck["learning_rates"]), d.tracin.checkpoints,
      first_k=int(d.tracin.first_k), train_accuracy=ck["train_accuracy"],
      fit_threshold=float(d.tracin.fit_threshold))
  names = list(dict.fromkeys(list(d.detectors) + [d.flag_by]))
  scores = registry.compute_scores(names, registry.Inputs(
      labels=labels, per_checkpoint=per_checkpoint,
      selected_checkpoints=selected, head_features=ck["head_features"],
      head_probs=ck["head_probs"], learning_rates=ck["learning_rates"],
      probs=ck["probs"], out_of_sample=oos, rank_method=d.rank_method,
      ensemble_members=tuple(d.ensemble.members),
      ensemble_weights=tuple(d.ensemble.weights) or None))
  forward_s = round(time.time() - t0, 2)
  inf = runner.read_stamp(workdir, "influence")
  for name in scores:
    # TracIn's cost is the influence stage's; the others share one forward
    # pass per checkpoint.
    seconds.setdefault(name, inf["seconds"] if name == "self_influence"
                       and inf else forward_s)
  flipped = arrays["flipped"]
  tau_count = flagging.num_flagged("tau", n, tau=float(d.tau))
  sets = {"primary": primary_set(config)}
  sets.update({s: s for s in d.extra_flag_sets})
  masks = {key: _flag_set(spec, scores, issues, n, float(d.tau))
           for key, spec in sets.items()}
  scored = list(scores.items())
  if per_checkpoint is not None:
    scored += [(f"self_influence [checkpoint {t + 1}]", per_checkpoint[t])
               for t in range(len(per_checkpoint))]
  rows = _table(scored, flipped, tau_count, seconds)
  out = wd.stage_dir(workdir, NAME)
  index = arrays["index"]
  fileio.save_npz(os.path.join(out, "flagged.npz"),
                  **{key: np.sort(index[m]) for key, m in masks.items()},
                  _specs=np.array([f"{k}={v}" for k, v in sets.items()]))
  fileio.save_npz(os.path.join(out, "scores.npz"), index=index, **scores)
  if oos is not None:
    fileio.save_npy(os.path.join(out, "pred_probs.npy"), oos.probs)
    fileio.save_npy(os.path.join(out, "folds.npy"), oos.fold)
    fileio.save_npy(os.path.join(out, "index.npy"), index)
    fileio.write_json(os.path.join(out, "issues.json"), {
        "num_issues": int(issues.num_issues),
        "noise_rate": float(issues.noise_rate),
        "true_num_flipped": int(flipped.sum()),
        "joint": np.asarray(issues.joint).tolist()})
  fileio.write_text(os.path.join(out, "table.csv"),
                    fileio.csv_text(rows, TABLE_COLUMNS))
  fileio.write_text(os.path.join(out, "table.md"), _markdown(rows, d.tau))
  primary = scores[d.flag_by]
  flagged = masks["primary"]
  plots.score_histograms(os.path.join(out, "histograms.png"), primary,
                         flipped, float(primary[flagged].min())
                         if flagged.any() else 0.0, xlabel=d.flag_by)
  top = np.argsort(-primary, kind="stable")[:int(d.top_k_grid)]
  plots.labelled_grid(os.path.join(out, "top_flagged.png"),
                      arrays["image"][top], labels[top],
                      arrays["clean_label"][top], dataset.class_names)
  m = flip_metrics.detection_metrics(primary, flipped, int(flagged.sum()))
  return {"flag_set": sets["primary"], "num_flagged": int(flagged.sum()),
          "precision": m["precision"], "recall": m["recall"],
          "auroc": m["auroc"], "random_precision": m["random_precision"],
          "noise_rate_estimate": None if issues is None
          else float(issues.noise_rate), "table": rows}


def summary_line(s: dict) -> str:
  text = (f"detect: {s['num_flagged']} flagged by {s['flag_set']}; "
          f"precision {s['precision']:.3f} (random "
          f"{s['random_precision']:.3f}), recall {s['recall']:.3f}, AUROC "
          f"{s['auroc']:.3f}")
  if s.get("noise_rate_estimate") is not None:
    text += f"; estimated noise rate {s['noise_rate_estimate']:.3f}"
  return text
