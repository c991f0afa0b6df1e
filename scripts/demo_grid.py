"""Writes a grid PNG of demo faces: one row per class of each task.

  python scripts/demo_grid.py docs/demo_faces.png [--size 64] [--per-row 8]
"""

import argparse

import numpy as np
from PIL import Image

from configs import base
from diffinf_jax.data import demo_faces


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("out")
  parser.add_argument("--size", type=int, default=64)
  parser.add_argument("--per-row", type=int, default=8)
  args = parser.parse_args()
  d = demo_faces.render_dataset(400, 60, args.size, seed=11,
                                age_bins=base.AGE_BINS)
  rows = []
  for key, k in [("age_label", c) for c in range(3)] + [
      ("expression_label", c) for c in range(4)]:
    sel = np.flatnonzero(d[key] == k)[:args.per_row]
    rows.append(np.concatenate(list(d["image"][sel]), axis=1))
  grid = ((np.concatenate(rows, axis=0) + 1) * 127.5).round().astype(np.uint8)
  Image.fromarray(grid).save(args.out)
  print(f"wrote {args.out}: rows young/middle/old, then "
        "happy/neutral/surprised/sad")


if __name__ == "__main__":
  main()
