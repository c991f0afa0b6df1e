"""`diffinf detect` on any labelled folder: 10 classes, names from the CSV."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from diffinf_jax import cli

NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven",
         "eight", "nine")


def _folder(tmp_path, n_per_class=14):
  """16 px images whose class is a coloured bar position; CSV with names."""
  root = tmp_path / "images"
  root.mkdir()
  rng = np.random.default_rng(0)
  rows = ["path,label,identity"]
  for k, name in enumerate(NAMES):
    for i in range(n_per_class):
      img = rng.integers(0, 60, (16, 16, 3)).astype(np.uint8)
      img[:, k + 3:k + 5] = (220, 40 + 20 * k, 255 - 20 * k)
      path = f"{name}/{i:03d}.png"
      (root / name).mkdir(exist_ok=True)
      Image.fromarray(img).save(root / path)
      rows.append(f"{path},{name},{i}")
  (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
  return root, tmp_path / "labels.csv"


def _args(tmp_path, root, csv):
  return ["--workdir", str(tmp_path / "w"), "--config", "configs/demo.py:tiny",
          "--config.data.name=folder", "--config.data.task=digits",
          f"--config.data.data_dir={root}", f"--config.data.labels_file={csv}",
          "--config.data.image_size=16", "--config.model.num_classes=10",
          "--config.noise.rate=0.3", "--config.train.num_epochs=1",
          "--config.detection.detectors=('confident_learning', 'small_loss', "
          "'last_layer')", "--config.detection.flag_by=confident_learning",
          "--config.detection.crossfit.features=('pixels',)",
          "--config.detection.crossfit.num_folds=3"]


@pytest.mark.slow
def test_ten_class_folder_data_train_detect_evaluate(tmp_path):
  root, csv = _folder(tmp_path)
  args = _args(tmp_path, root, csv)
  for stage in ("data", "train", "detect", "evaluate"):
    assert cli.main([stage] + args) == 0, stage
  w = tmp_path / "w"
  noise = json.load(open(w / "data" / "noise.json"))
  assert noise["num_flipped"] == round(0.3 * noise["num_train"])
  table = (w / "detect" / "table.md").read_text()
  for name in ("confident_learning", "small_loss", "last_layer"):
    assert f"| {name} |" in table
  flagged = np.load(w / "detect" / "flagged.npz")["primary"]
  assert len(flagged) == int(np.ceil(0.1 * noise["num_train"] - 1e-9))
  probs = np.load(w / "detect" / "pred_probs.npy")
  assert probs.shape == (noise["num_train"], 10)
  np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-6)
  md = (w / "eval" / "metrics.md").read_text()
  assert "| nine |" in md and "| zero |" in md
  metrics = json.load(open(w / "eval" / "metrics.json"))
  assert len(metrics["confusion_matrix"]) == 10


def test_too_many_folds_is_one_line_and_writes_nothing(tmp_path, capsys):
  root, csv = _folder(tmp_path, n_per_class=3)
  args = _args(tmp_path, root, csv) + [
      "--config.detection.crossfit.num_folds=5"]
  assert cli.main(["train"] + args) == 0
  capsys.readouterr()
  assert cli.main(["detect"] + args) == 1
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "detection.crossfit.num_folds=5" in err[0]
  assert not os.path.exists(tmp_path / "w" / "detect" / "flagged.npz")


def test_unknown_detector_is_refused_when_read(tmp_path, capsys):
  root, csv = _folder(tmp_path, n_per_class=2)
  assert cli.main(["data"] + _args(tmp_path, root, csv) + [
      "--config.detection.detectors=('tracin',)"]) == 1
  err = capsys.readouterr().err
  assert "detection.detectors" in err and "tracin" in err

