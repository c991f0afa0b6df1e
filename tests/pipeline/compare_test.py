"""`compare` on the tiny demo: table columns, reuse, data-changing methods."""

import csv
import os

import numpy as np
import pytest

from diffinf_jax import configuration
from diffinf_jax import fileio
from diffinf_jax import pipeline
from diffinf_jax import workdir as wd
from diffinf_jax.data import refined
from diffinf_jax.pipeline import compare
from diffinf_jax.pipeline import data as data_stage
from diffinf_jax.pipeline import runner
from diffinf_jax.pipeline import tables


def fake_upstream(config, w, monkeypatch):
  """A real W/train; current W/detect and W/correct made by stand-in stage
  bodies (a random flagged set, grey corrections), stamped by the runner."""
  ds = data_stage.load(config, w)
  train = ds.arrays("train")

  def detect(config, workdir):
    rng = np.random.default_rng(0)
    flagged = np.sort(rng.choice(train["index"], 4, replace=False))
    fileio.save_npz(wd.path(workdir, "detect", "flagged.npz"),
                    primary=flagged)
    return {}

  def correct(config, workdir):
    flagged = wd.flagged_indices(workdir, config)
    grey = np.zeros((len(flagged),) + train["image"].shape[1:], np.float32)
    fileio.save_npz(wd.correct_file(workdir, "corrected.npz"), index=flagged,
                    image=grey, reconstruction=grey + 0.5)
    return {}

  runner.execute("train", config, w)
  for name, body in (("detect", detect), ("correct", correct)):
    monkeypatch.setattr(pipeline.get(name), "run", body)
    runner.execute(name, config, w)
  return ds, wd.flagged_indices(w, config)


def test_compare_table_and_reuse(tmp_path, monkeypatch):
  w = str(tmp_path / "w")
  c = configuration.get_config(
      "configs/demo.py:tiny",
      ["compare.methods=('ce', 'influence_removal', 'diffinf')",
       "compare.seeds=(0, 1)", "compare.num_epochs=1", "train.num_epochs=1"])
  fake_upstream(c, w, monkeypatch)
  out = compare.run(c, w)
  with open(os.path.join(w, "compare", "table.csv")) as f:
    rows = list(csv.DictReader(f))
  assert tuple(rows[0].keys()) == tables.CSV_COLUMNS
  assert [r["method"] for r in rows] == ["ce", "influence_removal", "diffinf"]
  assert all(r["runs"] == "2" for r in rows)
  assert out["skipped"] == {}
  diffs = list(csv.DictReader(open(os.path.join(w, "compare",
                                                "differences.csv"))))
  pairs = {(d["a"], d["b"]) for d in diffs}
  assert pairs == {("influence_removal", "ce"), ("diffinf", "ce"),
                   ("diffinf", "influence_removal")}
  assert all(d["pairs"] == "2" for d in diffs)
  assert os.path.isfile(os.path.join(w, "compare", "forest.png"))
  assert os.path.isfile(os.path.join(w, "compare", "table.png"))
  # Reuse: a second run trains nothing (metrics files untouched).
  path = os.path.join(w, "compare", "ce", "seed0", "eval", "metrics.json")
  mtime = os.path.getmtime(path)
  compare.run(c, w)
  assert os.path.getmtime(path) == mtime


def test_method_without_its_input_is_listed_not_faked(tmp_path):
  w = str(tmp_path / "w")
  c = configuration.get_config(
      "configs/demo.py:tiny",
      ["compare.methods=('ce', 'diffinf')", "compare.num_epochs=1"])
  out = compare.run(c, w)
  assert [r["method"] for r in out["rows"]] == ["ce"]
  assert "diffinf" in out["skipped"]
  md = open(os.path.join(w, "compare", "table.md")).read()
  assert "| diffinf | | 0 | not run: needs a current" in md


def test_refined_and_removal_datasets(tmp_path, monkeypatch):
  w = str(tmp_path / "w")
  c = configuration.get_config("configs/demo.py:tiny", ["train.num_epochs=1"])
  ds, flagged = fake_upstream(c, w, monkeypatch)
  spec = compare.parse_method
  d2 = compare.method_dataset(spec("diffinf"), c, w, ds)
  pos = ds.position_of(flagged)
  assert len(d2.index) == len(ds.index)
  assert np.all(d2.image[pos] == 128)  # 0.0 in [-1, 1] -> uint8 128
  np.testing.assert_array_equal(d2.noisy_label, ds.noisy_label)
  other = np.setdiff1d(np.arange(len(ds.index)), pos)
  np.testing.assert_array_equal(d2.image[other], ds.image[other])
  d3 = compare.method_dataset(spec("influence_removal"), c, w, ds)
  assert len(d3.index) == len(ds.index) - len(flagged)
  recon = compare.method_dataset(spec("recon"), c, w, ds)
  assert np.all(recon.image[pos] == 191)  # 0.5 -> uint8 191
  relabel = compare.method_dataset(spec("relabel"), c, w, ds)
  np.testing.assert_array_equal(relabel.noisy_label[pos],
                                ds.clean_label[pos])
  np.testing.assert_array_equal(relabel.noisy_label[other],
                                ds.noisy_label[other])
  drop = compare.method_dataset(spec("drop_flipped"), c, w, ds)
  assert len(drop.index) == len(ds.index) - int(ds.flipped[pos].sum())
  assert not drop.flipped[drop.position_of(np.intersect1d(
      flagged, drop.index))].any()
  clean = compare.method_dataset(spec("clean"), c, w, ds)
  assert not clean.flipped.any()
  shape = (1,) + ds.image.shape[1:]
  with pytest.raises(KeyError, match="not in the dataset"):
    refined.replace_images(ds, np.array([99999]), np.zeros(shape))
  test_idx = ds.indices("test")[:1]
  with pytest.raises(ValueError, match="not a training sample"):
    refined.replace_images(ds, test_idx, np.zeros(shape))


def test_method_specs_are_checked_when_read():
  spec = compare.parse_method("coteaching@estimated")
  assert (spec.name, spec.noise_rate, spec.group) == ("coteaching",
                                                      "estimated", "baseline")
  assert compare.parse_method("promix").noise_rate == "true"
  assert compare.parse_method("diffinf@confident_learning:auto").qualifier == (
      "confident_learning:auto")
  for bad, match in (("divide_mix", "unknown method"),
                     ("elr@estimated", "only"), ("clean@x", "no qualifier")):
    with pytest.raises(ValueError, match=match):
      compare.parse_method(bad)
  with pytest.raises(ValueError, match="compare.methods"):
    pipeline.check_config(configuration.get_config(
        "configs/demo.py:tiny", ["compare.methods=('ce', 'bogus')"]))
