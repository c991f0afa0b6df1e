"""The README's first two commands; .ci/run runs the second verbatim."""

import os
import re

ROOT = os.path.join(os.path.dirname(__file__), "..")


def _readme_commands():
  text = open(os.path.join(ROOT, "README.md")).read()
  return re.findall(r"```bash\n(.*?)\n```", text, flags=re.S)[:2]


def test_first_command_runs_the_demo():
  assert _readme_commands()[0].strip().endswith("diffinf run")


def test_ci_runs_the_readme_test_command_verbatim():
  ci = open(os.path.join(ROOT, ".ci", "run")).read()
  test_cmd = _readme_commands()[1].strip()
  assert "pytest" in test_cmd
  assert test_cmd in ci.splitlines()
