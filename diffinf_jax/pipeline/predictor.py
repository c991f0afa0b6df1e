"""`diffinf predictor`: the influence predictor h_omega on classifier features."""

from __future__ import annotations

import os

import jax
import numpy as np

from diffinf_jax import fileio
from diffinf_jax import workdir as wd
from diffinf_jax.influence import predictor
from diffinf_jax.models import classifier
from diffinf_jax.pipeline import data as data_stage
from diffinf_jax.pipeline import detect as detect_stage

NAME = "predictor"
HELP = "train the influence predictor h_omega (features + label -> P(high))"
DESCRIPTION = """Fits h_omega, a small MLP on the final classifier's penultimate features
and the one-hot assigned label, to predict membership of the flagged set
(W/detect; the paper: the top tau self-influence) on predictor.fit_fraction
of the training split; reports its AUROC on the rest. Writes W/predictor/
(params.npz, config.json, metrics.json)."""
DEPENDS = ("data", "train", "detect")
SECTIONS = ("predictor",)


def save(out_dir: str, params, mean, std, cfg: dict) -> None:
  flat = {jax.tree_util.keystr(k): np.asarray(v)
          for k, v in jax.tree_util.tree_flatten_with_path(params)[0]}
  fileio.save_npz(os.path.join(out_dir, "params.npz"), _mean=np.asarray(mean),
                  _std=np.asarray(std), **flat)
  fileio.write_json(os.path.join(out_dir, "config.json"), cfg)


def run(config, workdir: str) -> dict:
  dataset = data_stage.load(config, workdir)
  arrays = dataset.arrays("train")
  flagged = np.isin(arrays["index"], wd.flagged_indices(workdir, config))
  model, variables = wd.load_classifier(config, wd.train_dir(workdir),
                                        arrays["image"].shape[1:])
  feats = classifier.extract_features(model, variables, arrays["image"],
                                      config.influence.batch_size)
  p = config.predictor
  out = predictor.train_and_evaluate(
      feats, arrays["label"], flagged, num_classes=config.model.num_classes,
      hidden=p.hidden, num_epochs=p.num_epochs, lr=p.lr,
      batch_size=p.batch_size, fit_fraction=p.fit_fraction, seed=p.seed)
  out_dir = wd.stage_dir(workdir, NAME)
  save(out_dir, out["params"], out["mean"], out["std"], {
      "hidden": p.hidden, "input_dim": out["input_dim"],
      "feature_dim": int(feats.shape[1]),
      "num_classes": int(config.model.num_classes),
      "flag_set": detect_stage.primary_set(config),
      "classifier_model": config.model.to_dict()})
  fileio.write_json(os.path.join(out_dir, "metrics.json"), out["metrics"])
  return out["metrics"]


def summary_line(m: dict) -> str:
  return (f"predictor: AUROC {m['auroc']:.3f} on {m['eval_size']} held-out "
          f"samples (fit on {m['train_size']})")
