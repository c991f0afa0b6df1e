"""`diffinf data`: the dataset, its split and the training-label noise."""

from __future__ import annotations

import logging

from diffinf_jax import data as data_lib
from diffinf_jax import fileio
from diffinf_jax import workdir as wd
from diffinf_jax.data import dataset as dataset_lib

NAME = "data"
HELP = "build the dataset, split and training-label noise (W/data/labels.npz)"
DESCRIPTION = """Build the dataset of a config: render the embedded demo faces (or read FFHQ
thumbnails + Azure attribute labels, or a folder + CSV), assign the seeded
train/val/test split, and flip an exact fraction of TRAINING labels
(noise.kind symmetric: uniform over the other classes; pair: i -> i+1).

Writes W/config.json, W/data/labels.npz (index, noisy_label, clean_label,
flipped, split), W/data/noise.json (rate_requested, rate_realised, num_train,
num_flipped, per_class_rate, transition_matrix) and W/data/summary.json."""
DEPENDS = ()
SECTIONS = ("data", "noise", "model")


_SOURCE_CACHE: dict = {}


def source(config) -> dataset_lib.Source:
  """The images and clean labels of the config (kept for the process: every
  stage of `diffinf run` needs them and FFHQ's are slow to read)."""
  from diffinf_jax import configuration
  key = configuration.config_hash(config, ("data", "model"))
  if key not in _SOURCE_CACHE:
    _SOURCE_CACHE.clear()
    _SOURCE_CACHE[key] = data_lib.load_source(config)
  return _SOURCE_CACHE[key]


def run(config, workdir: str) -> dict:
  src = source(config)
  labels = data_lib.make_labels(config, src)
  stats = dataset_lib.noise_record(config, labels)
  logging.info("label noise: %d of %d training labels flipped (%.4f; "
               "requested %.4f), per class %s", stats["num_flipped"],
               stats["num_train"], stats["rate_realised"],
               stats["rate_requested"],
               [round(r, 4) for r in stats["per_class_rate"]])
  summary = dataset_lib.summary_record(config, src, labels)
  fileio.save_npz(wd.labels_path(workdir), **labels)
  fileio.write_json(wd.path(workdir, "data", "noise.json"), stats)
  fileio.write_json(wd.path(workdir, "data", "summary.json"), summary)
  return {"num_images": summary["num_images"],
          "split_counts": summary["split_counts"],
          "num_flipped": stats["num_flipped"],
          "rate_realised": stats["rate_realised"],
          "name": config.data.name, "task": config.data.task,
          "num_classes": int(config.model.num_classes)}


def summary_line(s: dict) -> str:
  c = s["split_counts"]
  return (f"data: {s['num_images']} images ({s['name']}, task {s['task']}, "
          f"{s['num_classes']} classes); train {c['train']}, val {c['val']}, "
          f"test {c['test']}; {s['num_flipped']} training labels flipped "
          f"(realised rate {s['rate_realised']:.4f})")


def load(config, workdir: str) -> data_lib.Dataset:
  """The run's dataset: runs the data stage if W/data is not current."""
  from diffinf_jax.pipeline import runner
  if not runner.up_to_date(NAME, config, workdir):
    runner.execute(NAME, config, workdir)
  labels = fileio.load_npz(wd.labels_path(workdir),
                           required=dataset_lib.LABEL_KEYS)
  return data_lib.assemble(config, source(config), labels)
