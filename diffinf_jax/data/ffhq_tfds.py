"""TensorFlow Datasets builder for FFHQ thumbnails with Azure age/expression labels.

FFHQ cannot be downloaded here: put the data in a manual dir and build with

  import tensorflow_datasets as tfds
  from diffinf_jax.data import ffhq_tfds
  builder = ffhq_tfds.FfhqAttributes(config="age", data_dir="~/tfds")
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir="/data/ffhq"))
  ds = builder.as_dataset(split="train")

`manual_dir` holds `thumbnails128x128/` and optionally `json/` (the per-image
Azure JSON files; without it the packaged label CSV is used). Splits follow
FFHQ's official boundary: indices < 60,000 train, >= 60,000 test. Label rules
are those of `diffinf_jax.data.ffhq`.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow_datasets as tfds

from configs import base
from diffinf_jax.data import ffhq
from diffinf_jax.data import images

_TASKS = {
    "age": ("young", "middle", "old"),
    "expression": ("happy", "neutral", "surprised", "sad"),
}


class FfhqAttributes(tfds.core.GeneratorBasedBuilder):
  """FFHQ 128x128 thumbnails labelled with DiffInf age or expression classes."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  BUILDER_CONFIGS = [
      tfds.core.BuilderConfig(name="age", description="3 age bins"),
      tfds.core.BuilderConfig(name="expression", description="4 expressions"),
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Place FFHQ's `thumbnails128x128/` folder (layout NNN00/NNNNN.png) in the manual
  dir. Optionally add the ffhq-features-dataset `json/` folder; otherwise the
  labels packaged with diffinf-jax are used.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(128, 128, 3)),
            "index": np.int64,
            "label": tfds.features.ClassLabel(names=_TASKS[self.builder_config.name]),
        }),
        supervised_keys=("image", "label"),
        homepage="https://github.com/NVlabs/ffhq-dataset",
    )

  def _labels(self, manual_dir: str):
    json_dir = os.path.join(manual_dir, "json")
    if os.path.isdir(json_dir):
      records = ffhq.read_features_json_dir(json_dir)
    else:
      records = ffhq.read_features_csv()
    if self.builder_config.name == "age":
      labels = ffhq.age_labels(records, base.AGE_BINS)
    else:
      labels = ffhq.expression_labels(records, base.EXPRESSIONS)
    keep = labels >= 0
    return records["index"][keep], labels[keep]

  def _split_generators(self, dl_manager):
    manual_dir = os.fspath(dl_manager.manual_dir)
    index, labels = self._labels(manual_dir)
    root = os.path.join(manual_dir, "thumbnails128x128")
    if not os.path.isdir(root):
      raise FileNotFoundError(
          f"{root}: not found; put FFHQ thumbnails128x128/ in the manual dir")
    low = index < 60000
    return {
        "train": self._generate_examples(root, index[low], labels[low]),
        "test": self._generate_examples(root, index[~low], labels[~low]),
    }

  def _generate_examples(self, root, index, labels):
    for idx, label in zip(index, labels):
      image = images.load_image(ffhq.thumbnail_path(root, int(idx)), 128,
                                ffhq.FFHQ_LAYOUT_HINT)
      yield int(idx), {"image": image, "index": int(idx), "label": int(label)}
