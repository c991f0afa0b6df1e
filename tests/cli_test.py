"""The command line: help, argument errors, one-line failures, multi-host."""

import os
import subprocess
import sys

import pytest

from diffinf_jax import cli

ROOT = os.path.join(os.path.dirname(__file__), "..")


def _run(args, env=None, cwd=ROOT, timeout=600):
  """`diffinf ARGS` in a fresh process: (exit code, stdout, stderr)."""
  full_env = dict(os.environ, XLA_FLAGS="", **(env or {}))
  p = subprocess.run([sys.executable, "-m", "diffinf_jax.cli", *args],
                     cwd=cwd, env=full_env, capture_output=True, text=True,
                     timeout=timeout)
  return p.returncode, p.stdout, p.stderr


def _error_lines(stderr: str) -> list[str]:
  """stderr without the INFO progress log lines."""
  return [ln for ln in stderr.splitlines()
          if ln.strip() and " INFO " not in ln]


def test_bare_command_prints_help_and_starts_nothing(capsys, tmp_path,
                                                     monkeypatch):
  monkeypatch.chdir(tmp_path)
  assert cli.main([]) == 2
  out = capsys.readouterr().out
  assert "usage: diffinf" in out and "run" in out
  assert not os.path.exists(tmp_path / "runs")


def test_zero_batch_size_is_refused_by_the_parser(capsys):
  with pytest.raises(SystemExit) as e:
    cli.main(["diffae", "encode", "--weights", "w", "--input", "i.npz",
              "--out", "o.npz", "--batch-size", "0"])
  assert e.value.code == 2
  err = capsys.readouterr().err
  assert "--batch-size" in err and "must be >= 1" in err


def test_missing_coordinator_is_one_clear_line(tmp_path):
  code, _, err = _run(["data", "--config", "configs/demo.py:tiny",
                       "--workdir", str(tmp_path / "w")],
                      env={"DIFFINF_DISTRIBUTED": "1"})
  lines = _error_lines(err)
  assert code == 1 and len(lines) == 1, err
  assert "DIFFINF_DISTRIBUTED=1" in lines[0] and "coordinator" in lines[0]
  assert "Traceback" not in err


@pytest.mark.slow
def test_single_task_slurm_job_runs_influence(tmp_path):
  # A SLURM allocation of one task: jax.distributed comes up once, even
  # though `run` calls several stages in one process.
  slurm = {"DIFFINF_DISTRIBUTED": "1", "SLURM_JOB_ID": "4242",
           "SLURM_STEP_NODELIST": "localhost", "SLURM_NTASKS": "1",
           "SLURM_PROCID": "0", "SLURM_LOCALID": "0",
           "XDG_CACHE_HOME": str(tmp_path / "cache")}
  code, out, err = _run(
      ["run", "--config", "configs/demo.py:tiny", "--workdir",
       str(tmp_path / "w"), "--config.train.num_epochs=1",
       "--config.run.stages=('data', 'train', 'influence')"], env=slurm)
  assert code == 0, err
  assert "influence:" in out
  assert os.path.isfile(tmp_path / "w" / "influence" / "scores.npy")


def test_corrupt_checkpoint_is_one_line(tmp_path):
  w = str(tmp_path / "w")
  env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
  code, _, err = _run(["train", "--config", "configs/demo.py:tiny",
                       "--workdir", w, "--config.train.num_epochs=1"],
                      env=env)
  assert code == 0, err
  step_dir = os.path.join(w, "train", "checkpoints")
  step = sorted(os.listdir(step_dir))[-1]
  for dirpath, _, files in os.walk(os.path.join(step_dir, step,
                                                "variables")):
    for f in files:
      with open(os.path.join(dirpath, f), "wb") as fh:
        fh.write(b"\0garbage")
  code, _, err = _run(["evaluate", "--workdir", w], env=env)
  lines = _error_lines(err)
  assert code == 1 and len(lines) == 1, err
  assert "corrupt or unreadable checkpoint" in lines[0]
  assert step in lines[0]
  assert not os.path.exists(os.path.join(w, "eval", "metrics.json"))
