"""Does the DiffAE's label (or its z_sem) decide the class of a decode?

  python scripts/class_control.py --config configs/demo.py:task=age \
      [--diffae DIR] [--num 128] [--t-max 600 800 999] [--guidance 1 3] \
      [--json OUT.json]

For the first --num training images of the config's dataset (clean labels
known), each image is inverted to x_t (diffae.t_encode steps to t_max,
diffae.invert_refine refinements, under the null class) and decoded
(diffae.t_decode steps) in four ways; the config's independent judge
(judge.weights_dir) says which class each decode shows:

  round trip   null class: MSE to the original, judge sees its own class;
  own label    decoded under its clean label with guidance w;
  other label  decoded under the next class (c + 1 mod K) with guidance w:
               "judge sees the target" is the class control the correction
               relies on (conditional route, paper eq. 6-8);
  z swap       null class, z_sem of a DONOR image of the next class:
               whether z_sem carries the class (latent / zshift routes).

Prints one line per row and writes them as JSON (--json). Unconditional
DiffAEs get the round-trip and z-swap rows only.
"""

import argparse
import json
import sys

import jax
import jax.numpy as jnp
import numpy as np

from diffinf_jax import configuration
from diffinf_jax import data
from diffinf_jax.models.diffae import runtime as diffae_runtime
from diffinf_jax import pretrained
from diffinf_jax.models import classifier


def _dataset_images(config, num: int):
  src = data.load_source(config)
  ds = data.assemble(config, src, data.make_labels(config, src))
  train = ds.arrays("train")
  return train["image"][:num], train["clean_label"], train["image"], len(
      ds.class_names)


def _donors(clean_all: np.ndarray, own: np.ndarray, k: int) -> np.ndarray:
  """Index of a fixed image of class (c + 1) mod K for each class c."""
  first = {c: int(np.flatnonzero(clean_all == c)[7]) for c in range(k)}
  return np.array([first[(int(c) + 1) % k] for c in own])


def measure(ae, judge_fn, x, own, z_donor, k: int, *, t_encode: int,
            t_decode: int, refine: int, t_max: int, guidance) -> list[dict]:
  """Rows of {t_max, decode, guidance, mse, judge_target} for images x."""
  target = (own + 1) % k

  @jax.jit
  def encode(x):
    return ae.encode(x, t_encode, t_max=t_max, refine=refine)

  @jax.jit
  def decode(z, x_t, label, w):
    return ae.decode(z, x_t, t_decode, t_max=t_max, label=label,
                     guidance_scale=w)

  @jax.jit
  def decode_null(z, x_t):
    return ae.decode(z, x_t, t_decode, t_max=t_max)

  z, x_t = encode(x)

  def row(name, out, wanted, w=None):
    seen = judge_fn(np.asarray(out)).argmax(-1)
    return {"t_max": t_max, "decode": name, "guidance": w,
            "mse": float(jnp.mean((out - x) ** 2)),
            "judge_target": float(np.mean(seen == wanted))}

  rows = [row("round trip", decode_null(z, x_t), own),
          row("z swap", decode_null(z_donor, x_t), target)]
  if ae.num_classes:
    for w in guidance:
      w = jnp.float32(w)
      rows.append(row("own label", decode(z, x_t, jnp.asarray(own), w), own,
                      float(w)))
      rows.append(row("other label", decode(z, x_t, jnp.asarray(target), w),
                      target, float(w)))
  return rows


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--config", default="configs/demo.py")
  p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
  p.add_argument("--diffae", default="", help="weights dir (default: "
                 "the config's diffae.weights_dir)")
  p.add_argument("--num", type=int, default=128)
  p.add_argument("--t-max", type=int, nargs="+", default=[600, 800, 999])
  p.add_argument("--guidance", type=float, nargs="+", default=[1.0, 3.0])
  p.add_argument("--json", default="")
  args = p.parse_args(argv)
  config = configuration.get_config(args.config, args.set)
  a = config.diffae
  ae = diffae_runtime.load_diffae(args.diffae or a.weights_dir)
  x, clean_all, all_images, k = _dataset_images(config, args.num)
  own = clean_all[:len(x)]
  model, variables = pretrained.load_classifier(config.judge.weights_dir,
                                                x.shape[1:])
  judge_fn = lambda im: classifier.predict_dataset(  # noqa: E731
      model.apply, variables, im, int(config.evaluation.batch_size))
  z_donor = jax.jit(ae.encode_semantic)(
      jnp.asarray(all_images[_donors(clean_all, own, k)]))
  rows = []
  for t_max in args.t_max:
    for r in measure(ae, judge_fn, jnp.asarray(x), own, z_donor, k,
                     t_encode=int(a.t_encode), t_decode=int(a.t_decode),
                     refine=int(a.invert_refine), t_max=t_max,
                     guidance=args.guidance):
      w = "" if r["guidance"] is None else f" w={r['guidance']:g}"
      print(f"t_max {r['t_max']}: {r['decode']}{w}: MSE {r['mse']:.4f}, "
            f"judge sees the wanted class {r['judge_target']:.2f}",
            flush=True)
      rows.append(r)
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"diffae": args.diffae or a.weights_dir, "num": len(x),
                 "rows": rows}, f, indent=1)
  return 0


if __name__ == "__main__":
  sys.exit(main())
