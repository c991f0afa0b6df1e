"""`diffinf diffae encode|decode|reconstruct`: run a DiffAE on arrays."""

from diffinf_jax import argtypes

HELP = "DiffAE encode / decode / reconstruct .npz arrays with converted weights"
DESCRIPTION = """Run a converted (or trained) DiffAE on arrays, NHWC:

  diffinf diffae encode      --weights W --input in.npz --out out.npz  # x0 -> z_sem, x_T
  diffinf diffae decode      --weights W --input in.npz --out out.npz  # z_sem, x_T -> x0_hat
  diffinf diffae reconstruct --weights W --input in.npz --out out.npz  # x0 -> all three

Input arrays: `x0` [B, H, W, 3] in [-1, 1] (encode, reconstruct) or `z_sem`
[B, D] and `x_T` [B, H, W, 3] (decode). --t-encode / --t-decode set the DDIM
step counts (defaults 250 / 20 as in upstream's notebooks). A way to check the
port on your own checkpoint against upstream's outputs."""


def configure(parser, add_config_args=None):
  del add_config_args  # works on arrays and a weights directory only
  parser.add_argument("mode", choices=("encode", "decode", "reconstruct"))
  parser.add_argument("--weights", required=True,
                      help="directory from `diffinf convert diffae`")
  parser.add_argument("--input", required=True, help="input .npz")
  parser.add_argument("--out", required=True, help="output .npz")
  parser.add_argument("--t-encode", type=argtypes.positive_int, default=250)
  parser.add_argument("--t-decode", type=argtypes.positive_int, default=20)
  parser.add_argument("--batch-size", type=argtypes.positive_int, default=16)


def _batched(fn, arrays, batch_size):
  import numpy as np
  n = len(next(iter(arrays.values())))
  outs = []
  for s in range(0, n, batch_size):
    outs.append(fn(*[a[s:s + batch_size] for a in arrays.values()]))
  return [np.concatenate([o[i] for o in outs]) for i in range(len(outs[0]))]


def main(args, load_config=None):
  del load_config
  import jax
  import numpy as np
  from diffinf_jax.models.diffae import runtime as diffae_runtime
  from diffinf_jax import fileio
  ae = diffae_runtime.load_diffae(args.weights)
  arrays = fileio.load_npz(args.input)
  out = {}
  if args.mode in ("encode", "reconstruct"):
    if "x0" not in arrays:
      raise KeyError(f"{args.input}: needs an array `x0` [B, H, W, 3]")
    x0 = arrays["x0"].astype(np.float32)
    ae.check_images(x0)
    diffae_runtime.check_range(x0, f"{args.input}:x0")
    enc = jax.jit(lambda x: ae.encode(x, args.t_encode))
    z, x_T = _batched(lambda x: [np.asarray(a) for a in enc(x)], {"x0": x0},
                      args.batch_size)
    out.update(z_sem=z, x_T=x_T)
  if args.mode in ("decode", "reconstruct"):
    if args.mode == "decode":
      missing = [k for k in ("z_sem", "x_T") if k not in arrays]
      if missing:
        raise KeyError(f"{args.input}: missing arrays {missing}")
      out.update(z_sem=arrays["z_sem"].astype(np.float32),
                 x_T=arrays["x_T"].astype(np.float32))
    ae.check_images(out["x_T"])
    dec = jax.jit(lambda z, xt: ae.decode(z, xt, args.t_decode))
    (x0_hat,) = _batched(lambda z, xt: [np.asarray(dec(z, xt))],
                         {"z": out["z_sem"], "xt": out["x_T"]},
                         args.batch_size)
    out["x0_hat"] = x0_hat
    if args.mode == "decode":
      out = {"x0_hat": x0_hat}
  fileio.save_npz(args.out, **out)
  print(f"diffae {args.mode}: wrote {sorted(out)} to {args.out}")
  return 0
