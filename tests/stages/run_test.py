"""The whole pipeline on the tiny demo config: every artifact, every stage."""

import csv
import json
import os

import jax
import numpy as np
import pytest

from diffinf_jax import cli
from diffinf_jax.convert import common
from diffinf_jax.models import diffae


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _tiny_diffae(path):
  cfg = diffae.get_preset("tiny")
  v = diffae.init_variables(diffae.create_model(cfg), jax.random.key(0))
  common.write_converted(path, jax.device_get(v), cfg.to_dict(),
                         {"source_sha256": "", "source_prefix": "",
                          "num_source_keys": 0})


@pytest.mark.slow
def test_run_tiny_pipeline(tmp_path):
  w = str(tmp_path / "w")
  weights = str(tmp_path / "diffae")
  _tiny_diffae(weights)
  args = ["run", "--config", "configs/demo.py:tiny", "--workdir", w,
          f"--config.diffae.weights_dir={weights}",
          "--config.compare.methods=('ce', 'influence_removal', 'diffinf')"]
  assert cli.main(args) == 0
  run = json.load(open(os.path.join(w, "run.json")))
  assert set(run) == {"data", "train", "influence", "predictor", "correct",
                      "evaluate", "compare"}
  assert all(r["status"] == "done" for r in run.values()), run
  for rel in ("config.json", "versions.json", "data/labels.npz",
              "data/noise.json", "train/history.json", "train/curves.png",
              "eval/metrics.json", "eval/confusion.png",
              "eval/predictions.npz", "influence/scores.npy",
              "influence/scores.csv", "influence/per_checkpoint.npy",
              "influence/detection.json", "predictor/metrics.json",
              "correct/corrected.npz", "correct/summary.json",
              "compare/table.csv", "compare/table.md", "compare/table.png",
              "compare/detection.csv", "report.md", "report.html"):
    assert os.path.isfile(os.path.join(w, rel)), rel
  scores = np.load(os.path.join(w, "influence", "scores.npy"))
  assert scores.dtype == np.float64 and np.all(np.isfinite(scores))
  assert np.all(scores >= 0)
  summary = json.load(open(os.path.join(w, "correct", "summary.json")))
  detection = json.load(open(os.path.join(w, "influence",
                                          "detection.json")))
  assert summary["num_corrected"] == detection["num_flagged"] > 0
  corrected = np.load(os.path.join(w, "correct", "corrected.npz"))
  assert corrected["image"].shape == (summary["num_corrected"], 16, 16, 3)
  assert len(os.listdir(os.path.join(w, "correct", "images"))) == \
      summary["num_corrected"]
  for key in ("lpips_by_class", "lpips_mean", "identity_cos_mean",
              "p_assigned_before", "p_assigned_after", "p_high_before",
              "p_high_after", "oracle_agreement_before",
              "oracle_agreement_after", "grids"):
    assert key in summary, key
  rows = list(csv.DictReader(open(os.path.join(w, "compare", "table.csv"))))
  assert [r["method"] for r in rows] == ["ce", "influence_removal", "diffinf"]
  report = open(os.path.join(w, "report.md")).read()
  assert "## Self-influence" in report and "DiffInf" in report
  # A second run reuses everything (idempotent) and still succeeds.
  assert cli.main(args) == 0
