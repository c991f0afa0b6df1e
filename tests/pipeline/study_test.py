"""The study on the tiny config: pairs across noise seeds, reuse, identical
tables on a rerun."""

import csv
import json
import os

import pytest

from diffinf_jax import cli


@pytest.mark.slow
def test_tiny_study_table_pairs_and_rerun(tmp_path):
  w = str(tmp_path / "w")
  args = ["run", "--config", "configs/study.py:tiny", "--workdir", w,
          "--config.judge.kind=none", "--config.correction.num_steps=1",
          "--config.compare.methods=('ce', 'small_loss@estimated', "
          "'diffinf', 'relabel')"]
  assert cli.main(args) == 0
  for k in (0, 1):
    assert os.path.isfile(os.path.join(w, f"noise{k}", "correct",
                                       "corrected.npz"))
  table = os.path.join(w, "compare", "table.csv")
  rows = {r["method"]: r for r in csv.DictReader(open(table))}
  assert set(rows) == {"ce", "small_loss@estimated", "diffinf", "relabel"}
  # 2 noise seeds x 2 training seeds.
  assert all(r["runs"] == "4" and r["missing"] == "0" for r in rows.values())
  assert rows["small_loss@estimated"]["noise_rate"] == "estimated"
  diffs = list(csv.DictReader(open(os.path.join(w, "compare",
                                                "differences.csv"))))
  assert all(d["pairs"] == "4" for d in diffs)
  md = open(os.path.join(w, "compare", "table.md")).read()
  assert "± " in md and "n/a" not in md.split("Paired")[0]
  for name in ("detection.md", "correction.md", "forest.png", "table.png"):
    assert os.path.isfile(os.path.join(w, "compare", name)), name
  before = open(table).read()
  assert cli.main(args) == 0
  assert open(table).read() == before
  run = json.load(open(os.path.join(w, "run.json")))
  assert run["study"]["status"] == "up to date"
  report = open(os.path.join(w, "report.md")).read()
  assert "Paired differences" in report
