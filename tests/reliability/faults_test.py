"""Fault injection: killed stages resume to bit-identical outputs; corrupt
files give one clear line and never a half-written output.

A kill is simulated at a durable write (an atomic rename or a checkpoint
save) chosen at random per seed: the process stops there without cleanup,
leaving the temporary file behind as a real SIGKILL would. The stage is then
run again in the same work dir and its outputs are compared with an
uninterrupted run, byte for byte (arrays exactly).
"""

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest

from diffinf_jax import checkpointing
from diffinf_jax import configuration
from diffinf_jax import fileio
from diffinf_jax import workdir as wd
from diffinf_jax.pipeline import runner

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
SEEDS = (0, 1, 2)
# What each resumable stage must reproduce exactly.
OUTPUTS = {
    "train": ("history.json", "metrics.jsonl"),
    "influence": ("scores.npy", "per_checkpoint.npy", "index.npy",
                  "scores.csv"),
    "detect": ("flagged.npz", "scores.npz", "pred_probs.npy", "issues.json"),
    "correct": ("corrected.npz", "results.npz", "summary.json"),
}


class Killed(BaseException):
  """The process died here: nothing after this point runs."""


def _config():
  return configuration.get_config("configs/demo.py:tiny", [
      "influence.chunk_size=8", "correction.chunk_size=2",
      "correction.batch_size=2", "correction.num_steps=1",
      "detection.crossfit.model=classifier",
      "detection.crossfit.num_folds=2", "detection.crossfit.num_epochs=1",
      "detection.crossfit.rounds=1"])


@contextlib.contextmanager
def _faults(monkeypatch, kill_at: int | None):
  """Counts durable writes; raises Killed at write number `kill_at`."""
  state = {"writes": 0}
  real_save = checkpointing.save

  def tick():
    state["writes"] += 1
    if state["writes"] == kill_at:
      raise Killed()

  @contextlib.contextmanager
  def atomic_path(path):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".",
                               suffix=".tmp", dir=directory)
    os.close(fd)
    yield tmp
    tick()  # a kill here leaves the temporary file, never `path`
    os.replace(tmp, path)

  def save(ckpt_dir, step, *args, **kwargs):
    if state["writes"] + 1 == kill_at:
      # Killed inside Orbax's write: its temporary directory stays behind.
      os.makedirs(os.path.join(ckpt_dir, f"{step}.orbax-checkpoint-tmp-1"),
                  exist_ok=True)
    tick()
    real_save(ckpt_dir, step, *args, **kwargs)

  monkeypatch.setattr(fileio, "atomic_path", atomic_path)
  monkeypatch.setattr(checkpointing, "save", save)
  try:
    yield state
  finally:
    monkeypatch.undo()


def _read(path):
  if path.endswith(".npy"):
    return np.load(path)
  if path.endswith(".npz"):
    with np.load(path) as z:
      return {k: z[k] for k in z.files}
  if path.endswith(".json"):
    d = json.load(open(path))
    if isinstance(d, dict):
      d.pop("seconds", None)
    return d
  return open(path, "rb").read()


def _same(a, b) -> bool:
  if isinstance(a, dict) and isinstance(b, dict):
    return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
  if isinstance(a, np.ndarray):
    return a.dtype == b.dtype and np.array_equal(
        a, b, equal_nan=a.dtype.kind == "f")
  return a == b


def _checkpoints_equal(w_a, w_b) -> bool:
  a = checkpointing.list_checkpoints(wd.checkpoint_dir(wd.train_dir(w_a)))
  b = checkpointing.list_checkpoints(wd.checkpoint_dir(wd.train_dir(w_b)))
  return a == b  # metadata includes each step's variables_digest


def _upstream(config, ref: str, stage: str) -> None:
  """Runs every stage `stage` needs into `ref`."""
  for dep in ("data", "train", "influence", "detect", "predictor", "judge"):
    if dep == stage:
      return
    runner.execute(dep, config, ref)


@pytest.mark.slow
@pytest.mark.parametrize("stage", sorted(OUTPUTS))
def test_killed_stage_resumes_bit_identical(stage, tmp_path, monkeypatch,
                                            faults):
  config = _config()
  ref = str(tmp_path / "ref")
  _upstream(config, ref, stage)
  base = str(tmp_path / "base")
  shutil.copytree(ref, base)
  with _faults(monkeypatch, kill_at=None) as counted:
    runner.execute(stage, config, ref)
  total = counted["writes"]
  assert total >= 3, total
  for seed in SEEDS:
    w = str(tmp_path / f"killed{seed}")
    shutil.copytree(base, w)
    kill_at = int(np.random.default_rng(seed).integers(1, total))
    with _faults(monkeypatch, kill_at=kill_at):
      with pytest.raises(Killed):
        runner.execute(stage, config, w)
    assert runner.read_stamp(w, stage) is None  # not marked done
    runner.execute(stage, config, w)
    same = all(_same(_read(os.path.join(wd.stage_dir(ref, stage), f)),
                     _read(os.path.join(wd.stage_dir(w, stage), f)))
               for f in OUTPUTS[stage])
    if stage == "train":
      same = same and _checkpoints_equal(ref, w)
    faults.record(f"kill during {stage}", same)
    assert same, f"{stage} killed at write {kill_at}/{total} (seed {seed})"


def _cli(args, env):
  p = subprocess.run([sys.executable, "-m", "diffinf_jax.cli", *args],
                     cwd=ROOT, env=dict(os.environ, XLA_FLAGS="", **env),
                     capture_output=True, text=True, timeout=600)
  lines = [ln for ln in p.stderr.splitlines() if ln.strip() and
           " INFO " not in ln]
  return p.returncode, lines


@pytest.mark.slow
def test_corrupt_files_give_one_clear_line(tmp_path, monkeypatch, faults):
  config = configuration.get_config("configs/demo.py:tiny",
                                    ["train.num_epochs=1",
                                     "influence.chunk_size=8"])
  w = str(tmp_path / "w")
  for stage in ("data", "train", "influence"):
    runner.execute(stage, config, w)
  env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}

  # A corrupt influence chunk is not trusted: it is recomputed, same scores.
  scores = np.load(wd.influence_file(w, "scores.npy"))
  chunk = os.path.join(wd.stage_dir(w, "influence"), "partial",
                       sorted(os.listdir(os.path.join(
                           wd.stage_dir(w, "influence"), "partial")))[0],
                       "chunk_00000.npz")
  with open(chunk, "wb") as f:
    f.write(b"PK\3\4 not a zip")
  os.remove(os.path.join(wd.stage_dir(w, "influence"), "stamp.json"))
  runner.execute("influence", config, w)
  faults.record("corrupt chunk",
                np.array_equal(np.load(wd.influence_file(w, "scores.npy")),
                               scores))

  # A corrupt config: one line naming the file; nothing is written.
  cfg_path = os.path.join(w, wd.CONFIG)
  good = open(cfg_path).read()
  with open(cfg_path, "w") as f:
    f.write("{not json")
  code, lines = _cli(["evaluate", "--workdir", w], env)
  ok = (code == 1 and len(lines) == 1 and "config.json" in lines[0]
        and "not valid JSON" in lines[0]
        and not os.path.exists(os.path.join(w, "eval")))
  faults.record("corrupt config", ok)
  assert ok, lines
  with open(cfg_path, "w") as f:
    f.write(good)

  # A corrupt checkpoint: one line naming the step; no evaluation written.
  step_dir = wd.checkpoint_dir(wd.train_dir(w))
  step = sorted(n for n in os.listdir(step_dir) if n.isdigit())[-1]
  for dirpath, _, files in os.walk(os.path.join(step_dir, step, "variables")):
    for name in files:
      with open(os.path.join(dirpath, name), "wb") as f:
        f.write(b"\0garbage")
  code, lines = _cli(["evaluate", "--workdir", w], env)
  ok = (code == 1 and len(lines) == 1 and step in lines[0]
        and not os.path.exists(os.path.join(w, "eval", "metrics.json")))
  faults.record("corrupt checkpoint", ok)
  assert ok, lines


@pytest.mark.slow
def test_corrupt_image_gives_one_clear_line(tmp_path, faults):
  from PIL import Image
  root = tmp_path / "imgs"
  root.mkdir()
  rows = ["path,label"]
  rng = np.random.default_rng(0)
  for i in range(12):
    Image.fromarray(rng.integers(0, 255, (8, 8, 3), np.uint8)).save(
        root / f"{i}.png")
    rows.append(f"{i}.png,{i % 2}")
  (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
  (root / "5.png").write_bytes(b"not a png")
  w = str(tmp_path / "w")
  code, lines = _cli([
      "data", "--config", "configs/demo.py:tiny", "--workdir", w,
      "--config.data.name=folder", "--config.data.task=pixels",
      f"--config.data.data_dir={root}",
      f"--config.data.labels_file={tmp_path / 'labels.csv'}",
      "--config.model.num_classes=2", "--config.data.image_size=8"], {})
  ok = (code == 1 and len(lines) == 1 and "5.png" in lines[0]
        and "corrupt" in lines[0]
        and not os.path.exists(os.path.join(w, "data", "labels.npz")))
  faults.record("corrupt image", ok)
  assert ok, lines
