"""The work-dir contract: where every stage's outputs live and how to read them.

One module owns the layout of a run directory W, so no other module spells a
path inside it. Layout (stage -> directory):

  W/config.json, versions.json   the config and package versions of the run
  W/run.json, report.md/.html    `diffinf run`'s record and report
  W/data/      labels.npz (index, noisy_label, clean_label, flipped, split),
               noise.json, summary.json
  W/train/     checkpoints/ (Orbax steps with learning rates), best/,
               history.json, curves.png, metrics.jsonl
  W/influence/ scores.npy, index.npy, per_checkpoint.npy, scores.csv,
               meta.json, detection.json, histograms.png, top_flagged.png,
               partial/ (resumable chunks)
  W/predictor/ params.npz, config.json, metrics.json
  W/judge/     the independent judge's predictions (judge stage)
  W/correct/   images/, corrected.npz (index, image), results.npz,
               summary.json, grid_<class>.png, chunks/
  W/eval/      metrics.json, metrics.md, confusion.png, predictions.npz
  W/compare/   table.{csv,md,png}, detection.csv, <method>/seed<k>/{train,eval}

Every stage directory also holds `stamp.json` (see `diffinf_jax.pipeline`):
what it was made from, written last.
"""

from __future__ import annotations

import os

import numpy as np

from diffinf_jax import checkpointing
from diffinf_jax import fileio

CONFIG = "config.json"
VERSIONS = "versions.json"
RUN_RECORD = "run.json"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
STAMP = "stamp.json"

# Stage name -> its directory under W.
STAGE_DIRS = {"data": "data", "train": "train", "influence": "influence",
              "detect": "detect", "predictor": "predictor", "judge": "judge",
              "correct": "correct", "evaluate": "eval", "compare": "compare",
              "study": "compare",
              "train-diffae": "diffae_train"}


def path(workdir: str, *parts: str) -> str:
  return os.path.join(workdir, *parts)


def stage_dir(workdir: str, stage: str) -> str:
  """W/<directory of `stage`>."""
  return os.path.join(workdir, STAGE_DIRS[stage])


def rel(stage: str, name: str) -> str:
  """`name` in `stage`'s directory, relative to W (for reports and links)."""
  return f"{STAGE_DIRS[stage]}/{name}"


def checkpoint_dir(run_dir: str) -> str:
  """The Orbax checkpoints of a classifier run directory (W/train, ...)."""
  return checkpointing.run_checkpoints(run_dir)


def train_dir(workdir: str) -> str:
  return stage_dir(workdir, "train")


def labels_path(workdir: str) -> str:
  return path(workdir, "data", "labels.npz")


def influence_file(workdir: str, name: str) -> str:
  """W/influence/<name> (scores.npy, index.npy, per_checkpoint.npy, ...)."""
  return path(workdir, "influence", name)


def correct_file(workdir: str, name: str) -> str:
  return path(workdir, "correct", name)


def compare_run_dir(workdir: str, method: str, seed: int) -> str:
  """W/compare/<method>/seed<k>: one (method, seed) of the comparison, with
  its classifier run in train/ and its evaluation in eval/."""
  return path(workdir, "compare", method, f"seed{int(seed)}")


def run_parts(run_dir: str) -> tuple[str, str]:
  """(classifier run dir, evaluation dir) inside a comparison run."""
  return os.path.join(run_dir, "train"), os.path.join(run_dir, "eval")


def load_classifier(config, run_dir: str, image_shape, step: int | None = None):
  """(model, variables) of a classifier run's checkpoint (default: latest).

  Raises:
    FileNotFoundError: the run has no checkpoints (names the command).
    ValueError: the checkpoint does not match `config.model`.
  """
  from diffinf_jax import models
  from diffinf_jax.models import classifier
  ckpt_dir = checkpoint_dir(run_dir)
  found = checkpointing.list_checkpoints(ckpt_dir)
  if not found:
    raise FileNotFoundError(f"{ckpt_dir}: no checkpoints; run `diffinf "
                            "train` first")
  step = int(found[-1]["step"]) if step is None else int(step)
  model = models.get_model(config.model)
  abstract = classifier.abstract_variables(model, image_shape)
  return model, checkpointing.restore_variables(ckpt_dir, step, abstract)


def load_influence(workdir: str, train_index: np.ndarray | None = None
                   ) -> dict[str, np.ndarray]:
  """{index, scores, per_checkpoint} of the influence stage.

  Args:
    train_index: the training indices of the current data; scores of other
      indices (a stale run) raise instead of being misaligned.
  """
  out = {}
  for key in ("scores", "index", "per_checkpoint"):
    f = influence_file(workdir, f"{key}.npy")
    if not os.path.isfile(f):
      raise FileNotFoundError(f"{f}: not found; run `diffinf influence` "
                              "first")
    out[key] = np.load(f)
  if train_index is not None and not np.array_equal(out["index"],
                                                    train_index):
    raise ValueError(f"{influence_file(workdir, '')}: scores belong to other "
                     "training indices than this config's data; rerun "
                     "`diffinf influence`")
  return out


def flagged_indices(workdir: str, config, flag_set: str = "") -> np.ndarray:
  """Sorted dataset indices of a flagged set of W/detect: the primary one
  (detection.flag_by, the set predictor, correction and removal use) or a
  `DETECTOR:TAU|auto` set of detection.extra_flag_sets.

  Raises:
    FileNotFoundError: the detect stage has not run.
    KeyError: a set the detect stage did not make (names the config key).
  """
  del config  # the sets were made from it; their names say which
  f = path(workdir, "detect", "flagged.npz")
  if not os.path.isfile(f):
    raise FileNotFoundError(f"{f}: not found; run `diffinf detect` first")
  sets = fileio.load_npz(f, required=("primary",))
  key = flag_set or "primary"
  if key not in sets:
    made = [k for k in sets if not k.startswith("_") and k != "primary"]
    raise KeyError(f"flagged set {flag_set!r} was not made; add it to "
                   f"detection.extra_flag_sets (made: {made})")
  return np.sort(sets[key])


def all_flagged_indices(workdir: str) -> np.ndarray:
  """The union of every flagged set of W/detect (what correction repairs)."""
  f = path(workdir, "detect", "flagged.npz")
  sets = fileio.load_npz(f, required=("primary",))
  return np.unique(np.concatenate([v for k, v in sets.items()
                                   if not k.startswith("_")]))


def noise_rate_estimate(workdir: str) -> float:
  """cleanlab's confident-joint estimate of the noise rate (W/detect)."""
  f = path(workdir, "detect", "issues.json")
  if not os.path.isfile(f):
    raise FileNotFoundError(f"{f}: no noise-rate estimate; run `diffinf "
                            "detect` with cross-fitting (confident_learning)")
  return float(fileio.read_json(f)["noise_rate"])


def load_corrected(workdir: str) -> dict[str, np.ndarray]:
  """{index [M], image [M, H, W, 3], reconstruction [M, H, W, 3]} (float32
  in [-1, 1]): the correction stage's images of every flagged sample."""
  f = correct_file(workdir, "corrected.npz")
  if not os.path.isfile(f):
    raise FileNotFoundError(f"{f}: not found; run `diffinf correct` first")
  return fileio.load_npz(f, required=("index", "image"))


def corrected_images(workdir: str, index: np.ndarray,
                     key: str = "image") -> np.ndarray:
  """The corrected (or reconstructed, key='reconstruction') images of
  dataset `index`, in that order.

  Raises:
    KeyError: an index the correction stage did not correct, or a run that
      saved no reconstructions.
  """
  c = load_corrected(workdir)
  if key not in c:
    raise KeyError(f"{correct_file(workdir, 'corrected.npz')} has no {key!r}"
                   " images; rerun `diffinf correct`")
  row = {int(i): r for r, i in enumerate(c["index"])}
  missing = [int(i) for i in index if int(i) not in row]
  if missing:
    raise KeyError(f"{correct_file(workdir, 'corrected.npz')}: no "
                   f"correction of dataset indices {missing[:5]}; rerun "
                   "`diffinf correct` for this flagged set")
  return c[key][[row[int(i)] for i in index]]


def load_predictor(workdir: str):
  """(params, feature mean, feature std, config) of W/predictor's h_omega."""
  import jax
  import jax.numpy as jnp
  from diffinf_jax.influence import predictor
  out_dir = stage_dir(workdir, "predictor")
  cfg = fileio.read_json(os.path.join(out_dir, "config.json"))
  arrays = fileio.load_npz(os.path.join(out_dir, "params.npz"),
                           required=("_mean", "_std"))
  template = predictor.InfluenceMLP(cfg["hidden"]).init(
      jax.random.key(0), jnp.zeros((1, cfg["input_dim"])))
  paths = jax.tree_util.tree_flatten_with_path(template)
  leaves = []
  for k, v in paths[0]:
    key = jax.tree_util.keystr(k)
    if key not in arrays or arrays[key].shape != v.shape:
      raise ValueError(f"{out_dir}/params.npz: missing or misshaped {key}; "
                       "rerun `diffinf predictor`")
    leaves.append(jnp.asarray(arrays[key]))
  params = jax.tree.unflatten(paths[1], leaves)
  return params, arrays["_mean"], arrays["_std"], cfg
