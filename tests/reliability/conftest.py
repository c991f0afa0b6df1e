"""Fault-injection bookkeeping: every test records the faults it injected and
whether the pipeline survived them; the totals are printed at the end."""

import collections

import pytest

RECORD = collections.Counter()


class Faults:
  """record(kind, survived) for each injected fault."""

  def record(self, kind: str, survived: bool) -> None:
    RECORD[(kind, "injected")] += 1
    RECORD[(kind, "survived")] += int(bool(survived))


@pytest.fixture
def faults():
  return Faults()


def pytest_terminal_summary(terminalreporter):
  if not RECORD:
    return
  kinds = sorted({k for k, _ in RECORD})
  injected = sum(RECORD[(k, "injected")] for k in kinds)
  survived = sum(RECORD[(k, "survived")] for k in kinds)
  terminalreporter.write_sep("-", "fault injection")
  for k in kinds:
    terminalreporter.write_line(
        f"{k}: {RECORD[(k, 'injected')]} injected, "
        f"{RECORD[(k, 'survived')]} survived")
  terminalreporter.write_line(
      f"reliability: {injected} faults injected, {survived} survived")
