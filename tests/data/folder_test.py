"""The folder + CSV dataset: any classes, and errors that say what to fix."""

import numpy as np
import pytest
from PIL import Image

from diffinf_jax.data import folder


def _csv(tmp_path, text):
  path = tmp_path / "labels.csv"
  path.write_text(text)
  return str(path)


def test_class_names_from_the_csv_sorted(tmp_path):
  rec = folder.read_folder_csv(
      _csv(tmp_path, "path,label\na.png,cat\nb.png,dog\nc.png,ant\n"), 3)
  assert rec["class_names"] == ("ant", "cat", "dog")
  np.testing.assert_array_equal(rec["label"], [1, 2, 0])
  np.testing.assert_array_equal(rec["index"], [0, 1, 2])


def test_declared_names_and_integer_labels(tmp_path):
  path = _csv(tmp_path, "path,label,index\na.png,1,10\nb.png,zero,11\n")
  rec = folder.read_folder_csv(path, 2, ("zero", "one"))
  assert rec["class_names"] == ("zero", "one")
  np.testing.assert_array_equal(rec["label"], [1, 0])
  np.testing.assert_array_equal(rec["index"], [10, 11])
  ints = folder.read_folder_csv(_csv(tmp_path, "path,label\na,0\nb,9\n"), 10)
  assert ints["class_names"] == tuple(str(k) for k in range(10))


@pytest.mark.parametrize("text, declared, match", [
    ("path,label\n", (), "has a header but no rows"),
    ("a.png,1\nb.png,0\n", (), "needs a header line"),
    ("path,label\na.png,bird\n", ("cat", "dog", "eel"),
     "row 2 has label 'bird'"),
    ("path,label\na.png,5\n", (), "not one of the 3 declared classes"),
    ("path,label\na,x\nb,y\n", (), "2 classes .* model.num_classes=3"),
    ("path,label,index\na,0,1\nb,1,1\n", (), "duplicate values in column"),
])
def test_bad_csv_is_one_clear_error(tmp_path, text, declared, match):
  with pytest.raises(ValueError, match=match):
    folder.read_folder_csv(_csv(tmp_path, text), 3, declared)


def test_missing_image_names_the_folder_convention(tmp_path):
  Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "a.png")
  with pytest.raises(FileNotFoundError) as e:
    folder.load_folder_images(str(tmp_path), np.array(["a.png", "b.png"]), 4)
  assert "b.png: image missing" in str(e.value)
  assert "relative to data.data_dir" in str(e.value)
  assert "FFHQ" not in str(e.value)
