"""How much class information the DiffAE's semantic code carries.

  python scripts/zsem_swap.py --workdir runs/demo [--num 32] [--t-max 600 800 999]

For the first --num training images of a run (after `diffinf judge`), each
image is inverted to x_t (diffae.t_encode steps to t_max, diffae.invert_refine
refinements) and decoded with the z_sem of a DONOR image of another class
(clean labels). Prints, per t_max, the LPIPS of the plain round trip and of
the swap, and how often the run's independent judge sees the donor's class
vs the image's own class in the swapped decode. A generator whose z_sem
carries the class moves most images to the donor class; one whose x_t
carries it keeps them in their own class (then no edit of z_sem alone can
change the class; see README, Correction).
"""

import argparse
import sys

import jax.numpy as jnp
import numpy as np

from diffinf_jax import configuration
from diffinf_jax import pretrained
from diffinf_jax.models.guidance import lpips
from diffinf_jax.pipeline import correct as correct_stage
from diffinf_jax.pipeline import data as data_stage
from diffinf_jax.pipeline import judge as judge_stage


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--workdir", required=True)
  p.add_argument("--num", type=int, default=32)
  p.add_argument("--t-max", type=int, nargs="+", default=[600, 800, 999])
  args = p.parse_args(argv)
  config = configuration.from_json_file(f"{args.workdir}/config.json")
  ds = data_stage.load(config, args.workdir)
  train = ds.arrays("train")
  n = args.num
  x, own = jnp.asarray(train["image"][:n]), train["clean_label"][:n]
  k = len(ds.class_names)
  donor = np.array([np.flatnonzero(train["clean_label"] == (c + 1) % k)[7]
                    for c in own])
  judge = judge_stage.load(config, args.workdir, ds)
  if judge is None:
    raise SystemExit("no judge in this work dir: run `diffinf judge` first")
  distance = lpips.distance_fn(pretrained.load_lpips(""))
  ae = correct_stage.load_diffae(config)
  a = config.diffae
  z_donor = ae.encode_semantic(jnp.asarray(train["image"][donor]))
  for t_max in args.t_max:
    z, x_t = ae.encode(x, int(a.t_encode), t_max=t_max,
                       refine=int(a.invert_refine))
    recon = ae.decode(z, x_t, int(a.t_decode), t_max=t_max)
    swap = ae.decode(z_donor, x_t, int(a.t_decode), t_max=t_max)
    seen = judge.predict(train["index"][:n], np.asarray(swap)).argmax(1)
    print(f"t_max {t_max}: round-trip LPIPS "
          f"{float(jnp.mean(distance(x, recon))):.3f}, swap LPIPS "
          f"{float(jnp.mean(distance(x, swap))):.3f}; judge sees the donor's "
          f"class {np.mean(seen == train['clean_label'][donor]):.2f}, the "
          f"image's own class {np.mean(seen == own):.2f}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
