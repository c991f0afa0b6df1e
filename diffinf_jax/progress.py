"""Progress of long loops: a bar on a terminal, periodic log lines elsewhere.

Every stage that runs for more than a few seconds wraps its outer loop in
`track`, so a user always sees done/total, the rate and the time left: as a
tqdm bar when stderr is a terminal, otherwise (batch jobs, CI logs) as an INFO
line every `every_s` seconds and one at the end.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")
log = logging.getLogger("diffinf_jax.progress")


def _fmt_seconds(s: float) -> str:
  s = int(round(s))
  return f"{s // 60}:{s % 60:02d}" if s >= 60 else f"{s}s"


def line(desc: str, done: int, total: int | None, elapsed: float,
         new: int, unit: str) -> str:
  """`desc: 3/10 epoch (30%), 0.52 epoch/s, ETA 13s` (rate over this call)."""
  rate = new / elapsed if elapsed > 0 else 0.0
  text = f"{desc}: {done}"
  if total:
    text += f"/{total} {unit} ({100.0 * done / total:.0f}%)"
  else:
    text += f" {unit}"
  text += f", {rate:.3g} {unit}/s"
  if total and rate > 0:
    text += f", ETA {_fmt_seconds((total - done) / rate)}"
  return text


def track(iterable: Iterable[T], *, total: int | None, desc: str,
          unit: str = "it", done: int = 0, every_s: float = 10.0,
          stream=None) -> Iterator[T]:
  """Yields the items of `iterable`, reporting progress as it goes.

  Args:
    iterable: the work items.
    total: how many items the whole job has (including `done`), if known.
    desc: what is being done (stage and part).
    unit: the name of one item (epoch, chunk, batch, run, ...).
    done: items already finished before this call (a resumed job).
    every_s: seconds between log lines when not on a terminal.
    stream: where to check for a terminal (default stderr).
  """
  stream = stream if stream is not None else sys.stderr
  if getattr(stream, "isatty", lambda: False)():
    from tqdm import tqdm
    yield from tqdm(iterable, total=total, initial=done, desc=desc,
                    unit=unit, leave=False, file=stream)
    return
  t0 = last = time.monotonic()
  count = done
  for item in iterable:
    yield item
    count += 1
    now = time.monotonic()
    if now - last >= every_s:
      log.info(line(desc, count, total, now - t0, count - done, unit))
      last = now
  if count > done:
    log.info(line(desc, count, total, time.monotonic() - t0, count - done,
                  unit))
