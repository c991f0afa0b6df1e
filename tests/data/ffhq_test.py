"""FFHQ layout and Azure JSON parsing on a tiny generated tree."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from diffinf_jax import configuration
from diffinf_jax.pipeline import data as data_stage
from diffinf_jax.data import ffhq


def _face(age, **emotion):
  emo = {e: 0.0 for e in ffhq.EMOTIONS}
  emo.update(emotion)
  return {"faceId": "x", "faceRectangle": {"top": 1, "left": 1, "width": 60,
                                           "height": 60},
          "faceAttributes": {"age": float(age), "emotion": emo}}


# index -> JSON array (face 0 decides).
RECORDS = {
    0: [_face(5, happiness=0.9, neutral=0.1)],      # young, happy
    1: [_face(30, neutral=0.8, sadness=0.2)],       # middle, neutral
    2: [_face(55, surprise=0.7, neutral=0.3)],      # old, surprised
    3: [],                                          # no face: skipped
    4: [_face(20, sadness=0.6, neutral=0.4)],       # age excluded; sad
    5: [_face(45, anger=0.9, happiness=0.1)],       # age excluded; anger drop
    6: [_face(18, happiness=0.5, neutral=0.5)],     # tie -> happiness (first)
    7: [_face(25, contempt=0.5, happiness=0.5)],    # tie -> contempt: dropped
    1001: [_face(70, sadness=0.9), _face(3, happiness=1.0)],  # two faces
}


@pytest.fixture
def tree(tmp_path):
  json_dir = tmp_path / "json"
  img_dir = tmp_path / "thumbs"
  json_dir.mkdir()
  rng = np.random.default_rng(0)
  for idx, faces in RECORDS.items():
    (json_dir / f"{idx:05d}.json").write_text(json.dumps(faces))
    path = ffhq.thumbnail_path(str(img_dir), idx)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (128, 128, 3), np.uint8)).save(path)
  return tmp_path


def test_thumbnail_path_layout():
  assert ffhq.thumbnail_path("r", 0) == os.path.join("r", "00000", "00000.png")
  assert ffhq.thumbnail_path("r", 69999) == os.path.join(
      "r", "69000", "69999.png")


def test_json_parsing_and_label_rules(tree):
  rec = ffhq.read_features_json_dir(str(tree / "json"))
  np.testing.assert_array_equal(rec["index"], sorted(RECORDS))
  np.testing.assert_array_equal(rec["n_faces"], [1, 1, 1, 0, 1, 1, 1, 1, 2])
  age = ffhq.age_labels(rec, ((0, 18), (25, 40), (50, 200)))
  np.testing.assert_array_equal(age, [0, 1, 2, -1, -1, -1, 0, 1, 2])
  expr = ffhq.expression_labels(rec, ("happiness", "neutral", "surprise",
                                      "sadness"))
  np.testing.assert_array_equal(expr, [0, 1, 2, -1, 3, -1, 0, -1, 3])


def test_bad_json_names_the_file(tree):
  (tree / "json" / "00002.json").write_text("{not json")
  with pytest.raises(ValueError, match="00002.json: not valid JSON"):
    ffhq.read_features_json_dir(str(tree / "json"))


def test_missing_face_attributes_named(tree):
  (tree / "json" / "00002.json").write_text(json.dumps([{"faceId": "x"}]))
  with pytest.raises(ValueError, match="00002.json: face 0 lacks"):
    ffhq.read_features_json_dir(str(tree / "json"))


def _config(tree, task, **kw):
  overrides = ["data.name=ffhq", f"data.task={task}",
               f"model.num_classes={3 if task == 'age' else 4}",
               f"data.data_dir={tree / 'thumbs'}",
               f"data.json_dir={tree / 'json'}", "data.image_size=16",
               "data.split.val_fraction=0.0", "data.split.test_fraction=0.25",
               "noise.rate=0.0"]
  overrides += [f"{k}={v}" for k, v in kw.items()]
  return configuration.get_config("configs/demo.py:tiny", overrides)


def test_ffhq_dataset_end_to_end(tree, tmp_path):
  config = _config(tree, "age")
  ds = data_stage.load(config, str(tmp_path / "w"))
  np.testing.assert_array_equal(ds.index, [0, 1, 2, 6, 7, 1001])
  np.testing.assert_array_equal(ds.clean_label, [0, 1, 2, 0, 1, 2])
  assert ds.image.shape == (6, 16, 16, 3) and ds.image.dtype == np.uint8
  summary = json.load(open(tmp_path / "w" / "data" / "summary.json"))
  assert summary["no_face"] == 1 and summary["excluded"] == 2
  arr = ds.arrays("train")
  assert arr["image"].dtype == np.float32
  assert -1.0 <= arr["image"].min() and arr["image"].max() <= 1.0


def test_missing_image_is_named(tree, tmp_path):
  os.remove(ffhq.thumbnail_path(str(tree / "thumbs"), 2))
  with pytest.raises(FileNotFoundError, match="00002.png: image missing"):
    data_stage.load(_config(tree, "age"), str(tmp_path / "w"))


def test_corrupt_image_is_named(tree, tmp_path):
  with open(ffhq.thumbnail_path(str(tree / "thumbs"), 1), "wb") as f:
    f.write(b"not a png")
  with pytest.raises(ValueError, match="00001.png: corrupt"):
    data_stage.load(_config(tree, "age"), str(tmp_path / "w"))


def test_packaged_csv_reproduces_published_counts():
  rec = ffhq.read_features_csv()
  assert len(rec["index"]) == 70000
  assert int((rec["n_faces"] == 0).sum()) == 529
  age = ffhq.age_labels(rec, ((0, 18), (25, 40), (50, 200)))
  assert ffhq.label_counts(age, 3) == [13921, 27210, 8245]
  expr = ffhq.expression_labels(rec, ("happiness", "neutral", "surprise",
                                      "sadness"))
  assert ffhq.label_counts(expr, 4) == [43277, 24179, 835, 652]
  # Tie rule: 49221 (contempt = happiness) is dropped; 24402 -> neutral.
  pos = {int(i): p for p, i in enumerate(rec["index"])}
  assert expr[pos[49221]] == -1 and expr[pos[24402]] == 1
  # Official boundary counts.
  low = rec["index"] < 60000
  assert ffhq.label_counts(age[low], 3) == [11932, 23247, 7169]
