"""Tiny end-to-end training: checkpoints with learning rates, resume, eval."""

import json
import os

import jax
import numpy as np
import pytest

from diffinf_jax import checkpointing
from diffinf_jax import cli
from diffinf_jax import configuration
from diffinf_jax import workdir as wd
from diffinf_jax.pipeline import data as data_stage
from diffinf_jax.pipeline import evaluate
from diffinf_jax.training import loop


def _cfg(*extra):
  return configuration.get_config(
      "configs/demo.py:tiny", ["train.num_epochs=3", "train.save_every_epochs=1",
                               "train.schedule=cosine", *extra])


def _train(c, workdir, **kw):
  return loop.train(c, data_stage.load(c, workdir), wd.train_dir(workdir),
                    **kw)


def _params(workdir, step):
  c = _cfg()
  ds = data_stage.load(c, workdir)
  model, variables = wd.load_classifier(
      c, wd.train_dir(workdir), ds.arrays("train")["image"].shape[1:], step)
  return variables


def test_train_checkpoints_resume_and_evaluate(tmp_path):
  full, part = str(tmp_path / "full"), str(tmp_path / "part")
  c = _cfg()
  summary = _train(c, full)
  ckpts = checkpointing.list_checkpoints(os.path.join(full, "train",
                                                      "checkpoints"))
  # 33 training images, batch 8 (drop remainder): 4 steps per epoch.
  assert [m["step"] for m in ckpts] == [4, 8, 12]
  assert [m["epoch"] for m in ckpts] == [0, 1, 2]
  lrs = [m["learning_rate"] for m in ckpts]
  assert all(lr > 0 for lr in lrs) and lrs[0] > lrs[1] > lrs[2]  # cosine
  assert summary["steps"] == 12

  # Interrupted after epoch 1, then resumed: identical final parameters.
  _train(c, part, stop_after_epoch=1)
  assert checkpointing.latest_step(os.path.join(part, "train",
                                                "checkpoints")) == 8
  _train(c, part)
  a, b = _params(full, 12), _params(part, 12)
  for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-6,
                               atol=1e-7)
  history = json.load(open(os.path.join(part, "train", "history.json")))
  assert [h["epoch"] for h in history] == [0, 1, 2]
  assert os.path.isfile(os.path.join(full, "train", "curves.png"))
  assert os.path.isfile(os.path.join(full, "train", "metrics.jsonl"))
  assert os.listdir(os.path.join(full, "train", "best"))

  m = evaluate.evaluate_run(c, data_stage.load(c, full), wd.train_dir(full),
                           os.path.join(full, "eval"))
  for key in ("accuracy", "auroc_macro_ovr", "kappa_linear", "kappa",
              "per_class_accuracy", "confusion_matrix", "num_test"):
    assert key in m
  assert m["num_test"] == 10 and 0.0 <= m["accuracy"] <= 1.0
  pred = np.load(os.path.join(full, "eval", "predictions.npz"))
  np.testing.assert_allclose(pred["probs"].sum(1), 1.0, rtol=1e-5)
  assert float(np.mean(pred["probs"].argmax(1) == pred["label"])) == \
      pytest.approx(m["accuracy"])


def test_partial_and_mismatched_checkpoints_are_errors(tmp_path):
  w = str(tmp_path / "w")
  c = _cfg("train.num_epochs=1")
  _train(c, w)
  ckpt_dir = os.path.join(w, "train", "checkpoints")
  # Another architecture: clear error naming the mismatch.
  wide = configuration.get_config("configs/demo.py:tiny",
                                  ["model.head_hidden=32"])
  with pytest.raises(ValueError, match="does not match this model"):
    wd.load_classifier(wide, wd.train_dir(w), (32, 32, 3))
  # A partial step directory.
  os.makedirs(os.path.join(ckpt_dir, "99", "meta"))
  with pytest.raises(ValueError, match="partial checkpoint"):
    checkpointing.list_checkpoints(ckpt_dir)


def test_stage_refuses_other_config_without_force(tmp_path):
  w = str(tmp_path / "w")
  base = ["--config", "configs/demo.py:tiny", "--workdir", w,
          "--config.train.num_epochs=1"]
  assert cli.main(["train"] + base) == 0
  assert cli.main(["train"] + base + ["--config.train.lr=0.01"]) == 1
  assert cli.main(["train"] + base + ["--config.train.lr=0.01",
                                      "--force"]) == 0
