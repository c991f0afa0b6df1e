"""Renders a separately labelled pool of demo faces for DiffAE training.

  python scripts/render_label_pool.py --out-dir runs/pool \
      [--num-images 20000] [--num-identities 4000] [--render-seed 515151]

Writes OUT_DIR/pool_age.npz and OUT_DIR/pool_expression.npz, each with
image uint8 [N, H, W, 3] and label [N] (CLEAN labels), the layout of
`diffae.train.labels=pool` / `diffae.train.pool_file`. The identities are
sampled from a seed used by neither the dataset (data.demo.seed) nor the
judges (scripts/train_demo_judge.py), so the generator never sees the faces
it later edits or the faces the judges learnt from.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from diffinf_jax import configuration  # noqa: E402
import train_demo_judge  # noqa: E402

DEFAULT_RENDER_SEED = 515151


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--config", default="configs/demo.py")
  p.add_argument("--out-dir", required=True)
  p.add_argument("--num-images", type=int, default=20000)
  p.add_argument("--num-identities", type=int, default=4000)
  p.add_argument("--render-seed", type=int, default=DEFAULT_RENDER_SEED)
  args = p.parse_args(argv)
  d = configuration.get_config(args.config, []).data
  used = {int(d.demo.seed), train_demo_judge.DEFAULT_RENDER_SEED}
  if args.render_seed in used or args.render_seed + 1 in {s + 1 for s in used}:
    raise SystemExit(f"--render-seed {args.render_seed} is used by the "
                     "dataset or the judges: pick another")
  from diffinf_jax.data import demo_faces
  raw = demo_faces.render_dataset(args.num_images, args.num_identities,
                                  int(d.image_size), args.render_seed,
                                  d.age_bins)
  image = np.clip(np.round((raw["image"] + 1.0) * 127.5), 0,
                  255).astype(np.uint8)
  os.makedirs(args.out_dir, exist_ok=True)
  for task in ("age", "expression"):
    label = raw[f"{task}_label"]
    keep = label >= 0
    path = os.path.join(args.out_dir, f"pool_{task}.npz")
    np.savez(path, image=image[keep], label=label[keep].astype(np.int64))
    print(f"{path}: {int(keep.sum())} images, per class "
          f"{np.bincount(label[keep]).tolist()}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
