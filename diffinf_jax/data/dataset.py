"""One dataset interface for the demo, FFHQ and folder datasets.

Every dataset has stable integer indices (influence scores are keyed by them),
images (stored as uint8, served as float32 NHWC in [-1, 1]), the assigned
(possibly noisy) label, the clean label where known, and for the demo identity
ids and parsing masks. `load_source` reads the images and clean labels of a
config, `make_labels` draws the split and the training-split noise (the
content of labels.npz, which the data stage writes once) and `assemble`
joins the two into a `Dataset`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from diffinf_jax.data import demo_faces
from diffinf_jax.data import ffhq
from diffinf_jax.data import folder
from diffinf_jax.data import noise
from diffinf_jax.data import pipeline
from diffinf_jax.data import splits

LABEL_KEYS = ("index", "noisy_label", "clean_label", "flipped", "split")
TASK_CLASS_NAMES = {"age": ("young", "middle", "old"),
                    "expression": ("happy", "neutral", "surprised", "sad")}


def task_class_names(config) -> tuple[str, ...]:
  """Names of classes 0..K-1 of the demo/FFHQ task (data.class_names when
  given)."""
  if config.data.class_names:
    return tuple(config.data.class_names)
  return TASK_CLASS_NAMES[config.data.task]


@dataclasses.dataclass
class Source:
  """Images and clean labels of a dataset before splitting and noise."""
  index: np.ndarray            # [N] int64
  image: np.ndarray            # [N, H, W, 3] uint8
  clean_label: np.ndarray      # [N] int64
  extras: dict                 # identity [N], parsing [N, H, W], ...
  summary: dict                # counts for the record (skipped, excluded, ...)
  class_names: tuple = ()      # name of each class 0..K-1


@dataclasses.dataclass
class Dataset:
  """A labelled dataset with splits and (training-split) label noise."""
  name: str
  task: str
  num_classes: int
  index: np.ndarray
  image: np.ndarray            # uint8 [N, H, W, 3]
  clean_label: np.ndarray
  noisy_label: np.ndarray      # == clean_label outside the train split
  split: np.ndarray            # [N] 'train' | 'val' | 'test'
  extras: dict
  class_names: tuple = ()      # name of each class 0..K-1

  @property
  def flipped(self) -> np.ndarray:
    return self.noisy_label != self.clean_label

  def positions(self, split: str) -> np.ndarray:
    if split not in splits.SPLITS:
      raise ValueError(f"split {split!r}: use one of {splits.SPLITS}")
    return np.flatnonzero(self.split == split)

  def indices(self, split: str) -> np.ndarray:
    return self.index[self.positions(split)].astype(np.int32)

  def images(self, split: str) -> np.ndarray:
    return pipeline.to_float_image(self.image[self.positions(split)])

  def arrays(self, split: str, *, raw: bool = False) -> dict[str, np.ndarray]:
    """All per-sample arrays of a split, aligned on the leading axis.

    Keys: image ([n,H,W,3] float32 in [-1,1], or uint8 if raw), label
    (assigned: noisy on train), clean_label, flipped, index (int32), and any
    extras (identity, parsing, ...).
    """
    pos = self.positions(split)
    out = {
        "image": self.image[pos] if raw else pipeline.to_float_image(
            self.image[pos]),
        "label": self.noisy_label[pos].astype(np.int32),
        "clean_label": self.clean_label[pos].astype(np.int32),
        "flipped": self.flipped[pos],
        "index": self.index[pos].astype(np.int32),
    }
    for k, v in self.extras.items():
      out[k] = v[pos]
    return out

  def position_of(self, indices: np.ndarray) -> np.ndarray:
    """Positions of dataset indices (error naming the first unknown one)."""
    lookup = {int(i): p for p, i in enumerate(self.index)}
    try:
      return np.array([lookup[int(i)] for i in indices], np.int64)
    except KeyError as e:
      raise KeyError(f"dataset index {e.args[0]} is not in the dataset "
                     f"({len(self.index)} images)") from None


def _balance(labels: np.ndarray, num_classes: int, cap: int, seed: int
             ) -> np.ndarray:
  """Positions kept when subsampling every class to the rarest class count."""
  counts = [int((labels == k).sum()) for k in range(num_classes)]
  target = min(c for c in counts if c > 0)
  if cap > 0:
    target = min(target, cap)
  rng = np.random.default_rng(seed)
  keep = [rng.choice(np.flatnonzero(labels == k), size=min(target, c),
                     replace=False) for k, c in enumerate(counts) if c]
  return np.sort(np.concatenate(keep))


def _demo_source(config) -> Source:
  d = config.data
  raw = demo_faces.load_or_render(d.demo.num_images, d.demo.num_identities,
                                  d.image_size, d.demo.seed, d.age_bins,
                                  d.demo.cache_dir)
  label = raw["age_label"] if d.task == "age" else raw["expression_label"]
  extras = {"identity": raw["identity"].astype(np.int32),
            "parsing": raw["parsing"].astype(np.int32),
            "age": raw["age"].astype(np.float32)}
  keep = label >= 0
  return Source(raw["index"][keep].astype(np.int64),
                pipeline.to_uint8(raw["image"][keep]),
                label[keep].astype(np.int64),
                {k: v[keep] for k, v in extras.items()},
                {"rendered": int(len(label)), "excluded": int((~keep).sum())})


def ffhq_labels(config) -> tuple[np.ndarray, np.ndarray, dict]:
  """Indices and clean labels of the usable FFHQ images, plus counts."""
  d = config.data
  if d.json_dir:
    records = ffhq.read_features_json_dir(d.json_dir)
  else:
    records = ffhq.read_features_csv(d.labels_file)
  if d.task == "age":
    labels = ffhq.age_labels(records, d.age_bins)
  else:
    labels = ffhq.expression_labels(records, d.expressions)
  no_face = records["n_faces"] == 0
  keep = labels >= 0
  summary = {"num_records": int(len(labels)), "no_face": int(no_face.sum()),
             "excluded": int((~keep & ~no_face).sum()),
             "label_counts": ffhq.label_counts(labels, config.model.num_classes)}
  return records["index"][keep], labels[keep], summary


def _ffhq_source(config) -> Source:
  d = config.data
  index, label, summary = ffhq_labels(config)
  if d.balance:
    pos = _balance(label, config.model.num_classes, d.balance_max_per_class,
                   d.split.seed)
    index, label = index[pos], label[pos]
  if d.max_images > 0:
    index, label = index[:d.max_images], label[:d.max_images]
  summary["num_used"] = int(len(index))
  image = ffhq.load_images(d.data_dir, index, d.image_size)
  return Source(index, image, label, {}, summary)


def _folder_source(config) -> Source:
  d = config.data
  rec = folder.read_folder_csv(d.labels_file, config.model.num_classes,
                               tuple(d.class_names))
  idx = np.arange(len(rec["index"]))
  if d.balance:
    idx = _balance(rec["label"], config.model.num_classes,
                   d.balance_max_per_class, d.split.seed)
  if d.max_images > 0:
    idx = idx[:d.max_images]
  image = folder.load_folder_images(d.data_dir, rec["path"][idx], d.image_size)
  extras = {"identity": rec["identity"][idx].astype(np.int32)} if (
      "identity" in rec) else {}
  return Source(rec["index"][idx], image, rec["label"][idx], extras,
                {"num_used": int(len(idx))}, rec["class_names"])


SOURCES = {"demo": _demo_source, "ffhq": _ffhq_source, "folder": _folder_source}


def load_source(config) -> Source:
  if config.data.name not in SOURCES:
    raise ValueError(f"config data.name={config.data.name!r}: use one of "
                     f"{sorted(SOURCES)}")
  src = SOURCES[config.data.name](config)
  if not src.class_names:
    src = dataclasses.replace(src, class_names=task_class_names(config))
  bad = (src.clean_label < 0) | (src.clean_label >= config.model.num_classes)
  if bad.any():
    raise ValueError(f"label {src.clean_label[bad][0]} out of range for "
                     f"model.num_classes={config.model.num_classes}")
  return src


def make_labels(config, src: Source) -> dict[str, np.ndarray]:
  """Split assignment and training-split noise: the content of labels.npz."""
  d = config.data
  order = np.argsort(src.index, kind="stable")
  if d.split.kind == "official":
    split_sorted = splits.official_ffhq_split(src.index[order],
                                              d.split.val_fraction, d.split.seed)
  elif d.split.kind == "random":
    split_sorted = splits.random_split(src.index[order], d.split.val_fraction,
                                       d.split.test_fraction, d.split.seed)
  else:
    raise ValueError(f"config data.split.kind={d.split.kind!r}: use 'random' "
                     "or 'official'")
  split = np.empty_like(split_sorted)
  split[order] = split_sorted
  train = np.flatnonzero(split == "train")
  noisy = src.clean_label.astype(np.int32).copy()
  noisy_train, _ = noise.inject_noise(
      src.clean_label[train], config.model.num_classes, config.noise.rate,
      config.noise.seed, config.noise.kind)
  noisy[train] = noisy_train
  return {"index": src.index.astype(np.int64), "noisy_label": noisy,
          "clean_label": src.clean_label.astype(np.int32),
          "flipped": noisy != src.clean_label, "split": split}


def noise_record(config, labels: dict) -> dict:
  """noise.json: requested/realised rate, counts, per-class rates, matrix."""
  train = labels["split"] == "train"
  stats = noise.noise_statistics(labels["clean_label"][train],
                                 labels["noisy_label"][train],
                                 config.model.num_classes, config.noise.rate)
  stats["kind"] = config.noise.kind
  return stats


def summary_record(config, src: Source, labels: dict) -> dict:
  """summary.json: source counts, split sizes, class counts, image size."""
  summary = dict(src.summary)
  summary.update({
      "num_images": int(len(src.index)),
      "split_counts": {s: int((labels["split"] == s).sum())
                       for s in splits.SPLITS},
      "class_counts": {s: ffhq.label_counts(
          labels["clean_label"][labels["split"] == s], config.model.num_classes)
                       for s in splits.SPLITS},
      "image_size": int(src.image.shape[1]),
  })
  return summary


def assemble(config, src: Source, labels: dict) -> Dataset:
  """The Dataset of `src` with the split and noise of `labels` (labels.npz).

  Raises:
    ValueError: the labels belong to other indices (another dataset).
  """
  if not np.array_equal(np.asarray(labels["index"]), src.index):
    raise ValueError(
        "W/data/labels.npz does not match the dataset of this config (other "
        "indices); rerun `diffinf data` or use a fresh --workdir")
  return Dataset(config.data.name, config.data.task, config.model.num_classes,
                 src.index, src.image, labels["clean_label"].astype(np.int64),
                 labels["noisy_label"].astype(np.int64),
                 np.asarray(labels["split"]).astype(str), src.extras,
                 src.class_names)
