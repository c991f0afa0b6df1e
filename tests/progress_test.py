"""Progress output: log lines with done/total, rate and ETA off a terminal."""

import io
import logging

from diffinf_jax import progress


def test_log_lines_off_a_terminal(caplog):
  caplog.set_level(logging.INFO, logger="diffinf_jax.progress")
  items = list(progress.track(range(4), total=6, done=2, desc="train w",
                              unit="epoch", every_s=0.0, stream=io.StringIO()))
  assert items == [0, 1, 2, 3]
  lines = [r.getMessage() for r in caplog.records]
  assert lines[0].startswith("train w: 3/6 epoch (50%)")
  assert lines[-1].startswith("train w: 6/6 epoch (100%)")
  assert all("epoch/s" in ln for ln in lines)
  assert "ETA" in lines[0]


def test_line_format():
  assert progress.line("correct", 3, 10, 6.0, 3, "chunk") == (
      "correct: 3/10 chunk (30%), 0.5 chunk/s, ETA 14s")
  assert progress.line("x", 5, None, 1.0, 5, "it") == "x: 5 it, 5 it/s"
