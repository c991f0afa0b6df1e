"""The whole pipeline on the tiny demo config: every artifact, every stage."""

import csv
import json
import logging
import os

import numpy as np
import pytest

from diffinf_jax import cli



@pytest.mark.slow
def test_run_tiny_pipeline(tmp_path, caplog):
  caplog.set_level(logging.INFO, logger="diffinf_jax.progress")
  # The shipped tiny variant as a user runs it: the packaged demo networks
  # through the real loading path, nothing injected.
  w = str(tmp_path / "w")
  args = ["run", "--config", "configs/demo.py:tiny", "--workdir", w,
          "--config.compare.methods=('ce', 'influence_removal', 'diffinf')"]
  assert cli.main(args) == 0
  # Every stage that takes more than a moment reports done/total and a rate.
  progress = [r.getMessage() for r in caplog.records]
  for desc in ("train train:", "influence:", "correct:", "compare:"):
    assert any(p.startswith(desc) and "/s" in p for p in progress), desc
  run = json.load(open(os.path.join(w, "run.json")))
  assert set(run) == {"data", "train", "influence", "detect", "predictor",
                      "judge", "correct", "evaluate", "compare"}
  assert all(r["status"] == "done" for r in run.values()), run
  for rel in ("config.json", "versions.json", "data/labels.npz",
              "data/noise.json", "train/history.json", "train/curves.png",
              "eval/metrics.json", "eval/confusion.png",
              "eval/predictions.npz", "influence/scores.npy",
              "influence/scores.csv", "influence/per_checkpoint.npy",
              "detect/table.md", "detect/flagged.npz",
              "detect/pred_probs.npy", "predictor/metrics.json",
              "correct/corrected.npz", "correct/summary.json",
              "correct/ablation.csv", "correct/ablation.md",
              "compare/table.csv", "compare/table.md", "compare/table.png",
              "report.md", "report.html"):
    assert os.path.isfile(os.path.join(w, rel)), rel
  scores = np.load(os.path.join(w, "influence", "scores.npy"))
  assert scores.dtype == np.float64 and np.all(np.isfinite(scores))
  assert np.all(scores >= 0)
  summary = json.load(open(os.path.join(w, "correct", "summary.json")))
  sets = np.load(os.path.join(w, "detect", "flagged.npz"))
  union = np.unique(np.concatenate([sets[k] for k in sets.files
                                    if not k.startswith("_")]))
  assert len(sets["primary"]) > 0
  assert summary["num_corrected"] == len(union)
  corrected = np.load(os.path.join(w, "correct", "corrected.npz"))
  assert corrected["image"].shape == (summary["num_corrected"], 32, 32, 3)
  assert len(os.listdir(os.path.join(w, "correct", "images"))) == \
      summary["num_corrected"]
  for key in ("lpips_by_class", "lpips_mean", "identity_cos_mean",
              "p_assigned_before", "p_assigned_after", "p_high_before",
              "p_high_after", "judge_agreement_before",
              "judge_agreement_after", "grids"):
    assert key in summary, key
  rows = list(csv.DictReader(open(os.path.join(w, "compare", "table.csv"))))
  assert [r["method"] for r in rows] == ["ce", "influence_removal", "diffinf"]
  report = open(os.path.join(w, "report.md")).read()
  assert "## Detection" in report and "DiffInf" in report
  # A second run reuses everything (idempotent) and still succeeds.
  assert cli.main(args) == 0
  run = json.load(open(os.path.join(w, "run.json")))
  assert all(r["status"] == "up to date" for r in run.values()), run
