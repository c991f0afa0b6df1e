"""The runner: stale outputs are never reused, a moved work dir is reused,
a bad invocation leaves the work dir as it was."""

import json
import os
import shutil

import numpy as np
import pytest

from diffinf_jax import cli
from diffinf_jax import configuration
from diffinf_jax import fileio
from diffinf_jax import pipeline
from diffinf_jax import workdir as wd
from diffinf_jax.influence import tracin
from diffinf_jax.pipeline import runner

TINY = ["--config", "configs/demo.py:tiny", "--config.train.num_epochs=1"]


def _scores(w):
  return np.load(os.path.join(w, "influence", "scores.npy"))


@pytest.mark.slow
def test_retrained_classifier_never_reuses_old_gradient_norms(tmp_path):
  w, fresh = str(tmp_path / "w"), str(tmp_path / "fresh")
  assert cli.main(["train", "--workdir", w] + TINY) == 0
  assert cli.main(["influence", "--workdir", w] + TINY) == 0
  old = _scores(w)
  # Retrain with another learning rate: everything computed from the old
  # classifier is invalidated at once, and influence recomputes its norms.
  assert cli.main(["train", "--workdir", w, "--force",
                   "--config.train.lr=0.01"] + TINY) == 0
  assert runner.read_stamp(w, "influence") is None
  assert cli.main(["influence", "--workdir", w]) == 0
  for stage in ("train", "influence"):
    assert cli.main([stage, "--workdir", fresh,
                     "--config.train.lr=0.01"] + TINY) == 0
  np.testing.assert_array_equal(_scores(w), _scores(fresh))
  assert not np.allclose(_scores(w), 10 * old)  # not the stale norms x 10


@pytest.mark.slow
def test_moved_work_dir_reuses_everything(tmp_path, monkeypatch, capsys):
  w, moved = str(tmp_path / "w"), str(tmp_path / "elsewhere" / "w")
  assert cli.main(["train", "--workdir", w] + TINY) == 0
  assert cli.main(["influence", "--workdir", w] + TINY) == 0
  shutil.copytree(w, moved)
  shutil.rmtree(w)
  capsys.readouterr()
  assert cli.main(["influence", "--workdir", moved]) == 0
  assert "up to date" in capsys.readouterr().out
  # Without the stamp and outputs, the chunk files alone are still reused:
  # their fingerprint names what the norms depend on, never a path.
  os.remove(os.path.join(moved, "influence", "stamp.json"))
  os.remove(os.path.join(moved, "influence", "scores.npy"))

  def never(*a, **k):
    raise AssertionError("a finished chunk was recomputed")
  monkeypatch.setattr(tracin, "chunk_norms", never)
  assert cli.main(["influence", "--workdir", moved]) == 0


def test_a_typo_does_not_poison_the_work_dir(tmp_path, capsys):
  w = str(tmp_path / "w")
  assert cli.main(["data", "--workdir", w] + TINY) == 0
  saved = open(os.path.join(w, "config.json")).read()
  for bad, key in (("--config.influence.method=exakt", "influence.method"),
                   ("--config.correction.optimizer=adma",
                    "correction.optimizer"),
                   ("--config.train.batch_size=0", "train.batch_size"),
                   ("--config.judge.kind=oracle", "judge.kind")):
    capsys.readouterr()
    assert cli.main(["data", "--workdir", w, bad]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and key in err[0], err
    assert open(os.path.join(w, "config.json")).read() == saved
  assert cli.main(["data", "--workdir", w]) == 0


def test_failed_stage_records_no_config_and_retry_needs_no_force(
    tmp_path, monkeypatch):
  w = str(tmp_path / "w")
  train = pipeline.get("train")

  def crash(config, workdir):
    raise ValueError("simulated failure before any checkpoint")
  monkeypatch.setattr(train, "run", crash)
  assert cli.main(["train", "--workdir", w] + TINY) == 1
  assert runner.read_stamp(w, "train") is None
  cfg = json.load(open(os.path.join(w, "config.json")))  # written by data
  assert cfg["train"]["lr"] == 1e-3
  monkeypatch.setattr(train, "run", lambda config, workdir: {})
  # Another lr after the failure: no "made with another config" refusal.
  assert cli.main(["train", "--workdir", w, "--config.train.lr=0.002"]
                  + TINY) == 0
  cfg = json.load(open(os.path.join(w, "config.json")))
  assert cfg["train"]["lr"] == 0.002


def test_stale_stage_is_redone_and_downstream_invalidated(tmp_path,
                                                          monkeypatch):
  w = str(tmp_path / "w")
  calls = []

  def body(name):
    def run(config, workdir):
      calls.append(name)
      fileio.write_text(os.path.join(wd.stage_dir(workdir, name), "out.txt"),
                        name)
      return {}
    return run
  chain = ("train", "influence", "detect", "predictor")
  for name in chain:
    monkeypatch.setattr(pipeline.get(name), "run", body(name))

  def config(*overrides):
    return configuration.get_config("configs/demo.py:tiny", list(overrides))

  for name in chain:
    runner.execute(name, config(), w)
  assert calls == list(chain)
  for name in chain:  # all current: no work
    assert runner.execute(name, config(), w)["up_to_date"]
  assert len(calls) == 4
  # Only the predictor's own section changed: only it is redone.
  runner.execute("predictor", config("predictor.hidden=7"), w)
  assert calls[4:] == ["predictor"]
  # The influence config changed: influence is redone, and detection and the
  # predictor, made from the old scores, are no longer current.
  runner.execute("influence", config("influence.method=vmap"), w)
  assert calls[5:] == ["influence"]
  assert runner.read_stamp(w, "detect") is None
  assert runner.read_stamp(w, "predictor") is None
  assert not runner.up_to_date("predictor", config("influence.method=vmap"),
                               w)
  # A stale classifier is not silently replaced: --force (or `diffinf run`).
  with pytest.raises(ValueError, match="pass --force"):
    runner.execute("train", config("train.lr=0.002"), w)
  runner.execute("train", config("train.lr=0.002"), w, force=True)
  assert runner.read_stamp(w, "influence") is None
