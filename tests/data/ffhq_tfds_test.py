"""The TFDS builder on a tiny manual dir (generated PNGs + JSON)."""

import json
import os

import numpy as np
import pytest
from PIL import Image

tfds = pytest.importorskip("tensorflow_datasets")

from diffinf_jax.data import ffhq  # noqa: E402
from diffinf_jax.data import ffhq_tfds  # noqa: E402


def _face(age, **emotion):
  emo = {e: 0.0 for e in ffhq.EMOTIONS}
  emo.update(emotion)
  return [{"faceAttributes": {"age": age, "emotion": emo}}]


def test_builder_reads_manual_dir(tmp_path):
  manual = tmp_path / "manual"
  records = {3: _face(10, happiness=1.0), 4: [], 60001: _face(30, neutral=1.0),
             60002: _face(45, neutral=1.0)}
  (manual / "json").mkdir(parents=True)
  rng = np.random.default_rng(0)
  for idx, faces in records.items():
    (manual / "json" / f"{idx:05d}.json").write_text(json.dumps(faces))
    path = ffhq.thumbnail_path(str(manual / "thumbnails128x128"), idx)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (128, 128, 3), np.uint8)).save(path)
  builder = ffhq_tfds.FfhqAttributes(config="age", data_dir=str(tmp_path / "d"))
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=str(manual)))
  train = list(tfds.as_numpy(builder.as_dataset(split="train")))
  test = list(tfds.as_numpy(builder.as_dataset(split="test")))
  assert [(int(e["index"]), int(e["label"])) for e in train] == [(3, 0)]
  assert [(int(e["index"]), int(e["label"])) for e in test] == [(60001, 1)]
  assert train[0]["image"].shape == (128, 128, 3)
