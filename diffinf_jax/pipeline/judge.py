"""`diffinf judge`: an independent judge of "does this image show its label".

The correction is measured by whether the corrected image shows its assigned
label. A classifier trained on the very images it judges has memorised them
(it agrees with whatever labels it was trained on), so the judge never sees
an image it judges:

  judge.kind = weights   a classifier trained elsewhere (for the demo: on
                         freshly rendered faces of other identities, shipped
                         with the package), `judge.weights_dir`
  judge.kind = crossfit  K classifiers on the CLEAN labels of the training
                         split (synthetic noise: the clean labels are known),
                         each trained without one fold; an image is judged by
                         the model of its own fold
  judge.kind = none      no judge

Writes W/judge/judge.json (kind, accuracy of the judge on the training
split's clean labels, folds) and, for crossfit, W/judge/folds.npz (index,
fold) and W/judge/fold<k>/ (checkpoints).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from diffinf_jax import fileio
from diffinf_jax import metrics as metrics_lib
from diffinf_jax import pretrained
from diffinf_jax import workdir as wd
from diffinf_jax.data import refined
from diffinf_jax.models import classifier
from diffinf_jax.pipeline import data as data_stage

NAME = "judge"
HELP = "an independent judge of label consistency (never sees what it judges)"
DESCRIPTION = __doc__.split("\n", 2)[2]
DEPENDS = ("data",)
SECTIONS = ("judge", "model", "train", "seed")


@dataclasses.dataclass
class Judge:
  """predict(index [M], images [M, H, W, 3]) -> probs [M, K]."""
  kind: str
  predict: Callable[[np.ndarray, np.ndarray], np.ndarray]


def _fold_config(config):
  import ml_collections
  cfg = ml_collections.ConfigDict(config.to_dict())
  if int(config.judge.num_epochs) > 0:
    cfg.train.num_epochs = int(config.judge.num_epochs)
    cfg.train.save_every_epochs = min(int(cfg.train.save_every_epochs),
                                      cfg.train.num_epochs)
  return cfg


def _fold_dir(workdir: str, k: int) -> str:
  return wd.path(workdir, "judge", f"fold{k}")


def _train_crossfit(config, workdir: str, dataset) -> dict:
  from diffinf_jax.detection import folds as folds_lib
  from diffinf_jax.training import loop
  train = dataset.arrays("train", raw=True)
  folds = folds_lib.assign_folds(train["clean_label"], config.judge.num_folds,
                                 int(config.seed))
  fileio.save_npz(wd.path(workdir, "judge", "folds.npz"),
                  index=train["index"], fold=folds)
  clean = refined.clean_view(dataset)
  cfg = _fold_config(config)
  for k in range(int(config.judge.num_folds)):
    held = train["index"][folds == k]
    loop.train(cfg, refined.remove_indices(clean, held), _fold_dir(workdir, k))
  return {"num_folds": int(config.judge.num_folds)}


def run(config, workdir: str) -> dict:
  kind = config.judge.kind
  dataset = data_stage.load(config, workdir)
  out = {"kind": kind}
  if kind == "crossfit":
    out.update(_train_crossfit(config, workdir, dataset))
  if kind != "none":
    train = dataset.arrays("train", raw=True)
    judge = load(config, workdir, dataset)
    probs = judge.predict(train["index"], train["image"])
    out["accuracy_clean_train"] = metrics_lib.accuracy(
        train["clean_label"], probs.argmax(1))
  fileio.write_json(wd.path(workdir, "judge", "judge.json"), out)
  return out


def load(config, workdir: str, dataset) -> Judge | None:
  """The judge of a run (None for judge.kind = none)."""
  kind = config.judge.kind
  image_shape = dataset.image.shape[1:]
  if kind == "none":
    return None
  if kind == "weights":
    model, variables = pretrained.load_classifier(config.judge.weights_dir,
                                                   image_shape)
    return Judge(kind, lambda index, images: classifier.predict_dataset(
        model.apply, variables, images, int(config.evaluation.batch_size)))
  folds = fileio.load_npz(wd.path(workdir, "judge", "folds.npz"),
                          required=("index", "fold"))
  fold_of = dict(zip(folds["index"].tolist(), folds["fold"].tolist()))
  nets = [wd.load_classifier(config, _fold_dir(workdir, k), image_shape)
          for k in range(int(folds["fold"].max()) + 1)]

  def predict(index, images):
    try:
      fold = np.array([fold_of[int(i)] for i in index])
    except KeyError as e:
      raise ValueError(f"the judge has no fold for dataset index {e.args[0]} "
                       "(only training images are judged)") from None
    out = np.zeros((len(index), int(config.model.num_classes)), np.float32)
    for k, (model, variables) in enumerate(nets):
      sel = np.flatnonzero(fold == k)
      if sel.size:
        out[sel] = classifier.predict_dataset(
            model.apply, variables, images[sel],
            int(config.evaluation.batch_size))
    return out
  return Judge(kind, predict)


def summary_line(s: dict) -> str:
  acc = s.get("accuracy_clean_train")
  acc_s = "n/a" if acc is None else f"{acc:.3f}"
  return (f"judge: {s['kind']}; accuracy on the training split's clean "
          f"labels (never trained on) {acc_s}")
