"""Parity with the official DiffAE (fixture: perturbed random weights).

Tolerances are the fixture README's suggested float32 assertions; numerics
run at the highest matmul precision.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffinf_jax.models.diffae import runtime as diffae_runtime
from diffinf_jax.diffusion import ddim
from diffinf_jax.diffusion import schedules

FIX = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "diffae")
torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch


def nhwc(a):
  return np.moveaxis(np.asarray(a), -3, -1)


@pytest.fixture(scope="module")
def ae(tmp_path_factory):
  from weights_convert import diffae as conv
  dst = str(tmp_path_factory.mktemp("w") / "diffae")
  conv.convert(os.path.join(FIX, "diffae_public.ckpt"), dst)
  with jax.default_matmul_precision("highest"):
    yield diffae_runtime.load_diffae(dst)


@pytest.fixture(scope="module")
def f():
  return dict(np.load(os.path.join(FIX, "diffae_public.npz")))


def test_schedule(f):
  s = schedules.spaced_schedule(int(f["ddim_T"]))
  np.testing.assert_array_equal(s.timestep_map, f["ddim_timestep_map"])
  for k in ("alphas_cumprod", "alphas_cumprod_prev", "alphas_cumprod_next",
            "betas"):
    np.testing.assert_allclose(getattr(s, k), f[f"ddim_{k}"], atol=1e-12)
  np.testing.assert_allclose(schedules.linear_betas(), f["base_betas"],
                             atol=1e-15)


def test_z_sem_and_eps(ae, f):
  with jax.default_matmul_precision("highest"):
    z = np.asarray(ae.encode_semantic(nhwc(f["x0"])))
    np.testing.assert_allclose(z, f["z_sem"], atol=1e-5)
    for i in range(len(f["eps_t"])):
      eps = ae.eps(nhwc(f["x_t"][i]), jnp.asarray(f["eps_t"][i]), f["z_sem"])
      np.testing.assert_allclose(np.asarray(eps), nhwc(f["eps_pred"][i]),
                                 atol=1e-4)


def test_single_steps(ae, f):
  s = schedules.spaced_schedule(10)
  z = f["z_sem"]
  with jax.default_matmul_precision("highest"):
    # One reverse step from the previous trajectory state (or x0).
    for i in (0, 4, 9):
      x = nhwc(f["x0"]) if i == 0 else nhwc(f["ddim_enc_traj"][i - 1])
      t = jnp.full((2,), s.timestep_map[i])
      x_next, x0p = ddim.ddim_reverse_step(
          x, ae.eps(x, t, z), np.float32(s.alphas_cumprod[i]),
          np.float32(s.alphas_cumprod_next[i]))
      np.testing.assert_allclose(np.asarray(x_next),
                                 nhwc(f["ddim_enc_traj"][i]), atol=1e-4)
      # x0_pred = (x - sqrt(1 - abar) eps) / sqrt(abar) amplifies the eps
      # error by 1/sqrt(abar) (61x at t = 900), so its bound scales too.
      np.testing.assert_allclose(
          np.asarray(x0p), nhwc(f["ddim_enc_pred_x0"][i]),
          atol=1e-4 / np.sqrt(s.alphas_cumprod[i]))
    # One decoding step (entry j belongs to respaced index 9 - j).
    for j in (0, 5, 9):
      i = 9 - j
      x = nhwc(f["ddim_xT"]) if j == 0 else nhwc(f["ddim_dec_traj"][j - 1])
      t = jnp.full((2,), s.timestep_map[i])
      x_prev, x0p = ddim.ddim_step(x, ae.eps(x, t, z),
                                   np.float32(s.alphas_cumprod[i]),
                                   np.float32(s.alphas_cumprod_prev[i]))
      np.testing.assert_allclose(np.asarray(x_prev),
                                 nhwc(f["ddim_dec_traj"][j]), atol=1e-4)


def test_inversion_decoding_and_chain(ae, f):
  z = f["z_sem"]
  with jax.default_matmul_precision("highest"):
    eps_fn = lambda x, t: ae.eps(x, t, z)
    x_T = ddim.invert(eps_fn, nhwc(f["x0"]), 10)
    np.testing.assert_allclose(np.asarray(x_T), nhwc(f["ddim_xT"]), atol=5e-4)
    x0 = ddim.decode(eps_fn, nhwc(f["ddim_xT"]), 10)
    np.testing.assert_allclose(np.asarray(x0), nhwc(f["ddim_dec_x0"]),
                               atol=2e-3)
    x0r = ddim.decode(eps_fn, nhwc(f["ddim_rand_xT"]), 10)
    np.testing.assert_allclose(np.asarray(x0r), nhwc(f["ddim_rand_x0"]),
                               atol=2e-3)
    z_own, x_T_own = ae.encode(nhwc(f["x0"]), 10)
    chain = np.asarray(ae.decode(z_own, x_T_own, 10))
  diff = np.abs(chain - nhwc(f["ddim_dec_x0"]))
  assert diff.max() < 2e-2 and diff.mean() < 1e-3


def test_model_prefix_weights_fail_parity(tmp_path, f):
  from weights_convert import diffae as conv
  dst = str(tmp_path / "raw")
  m = conv.convert(os.path.join(FIX, "diffae_public.ckpt"), dst,
                   prefix="model.")
  assert m["source_prefix"] == "model."
  raw = diffae_runtime.load_diffae(dst)
  z = np.asarray(raw.encode_semantic(nhwc(f["x0"])))
  assert np.abs(z - f["z_sem"]).max() > 1e-3


def _block_outputs(inter: dict, prefix: str) -> dict:
  """{block name: output} keeping the LAST sub-module of every block
  (`input_blocks.K.J` -> block `input_blocks.K`, largest J wins)."""
  best = {}
  for name, val in inter.items():
    if not name.startswith(prefix) or "__call__" not in val:
      continue
    block, sub = name.rsplit(".", 1)
    if block not in best or int(sub) > best[block][0]:
      best[block] = (int(sub), val["__call__"][0])
  return {k: v for k, (_, v) in best.items()}


def test_block_outputs_match_debug_arrays(ae, f):
  """Every UNet / encoder block output (fixture `dbg_*`, element 0 of the
  first eps call) at 1e-4: pinpoints a layout error to one block."""
  from diffinf_jax.models import diffae
  x_t, t = nhwc(f["x_t"][0][:1]), jnp.asarray(f["eps_t"][0][:1])
  with jax.default_matmul_precision("highest"):
    _, st = ae.model.apply(ae.variables, x_t, t, f["z_sem"][:1],
                           capture_intermediates=True, mutable=True)
    _, se = ae.model.apply(ae.variables, nhwc(f["x0"][:1]),
                           method=diffae.DiffAE.encode,
                           capture_intermediates=True, mutable=True)
  unet = st["intermediates"]["unet"]
  enc = se["intermediates"]["encoder"]
  np.testing.assert_allclose(
      np.asarray(unet["time_embed.time_embed.2"]["__call__"][0]),
      f["dbg_time_emb"], atol=1e-4)
  checked = 0
  for tree, tag in ((unet, "unet"), (enc, "enc")):
    for kind, short in (("input_blocks", "in"), ("output_blocks", "out")):
      for block, out in _block_outputs(tree, kind).items():
        key = f"dbg_{tag}_{short}_{int(block.split('.')[1]):02d}"
        if key in f:
          np.testing.assert_allclose(np.asarray(out), nhwc(f[key]),
                                     atol=1e-4, err_msg=f"{tag} {block}")
          checked += 1
    mid = _block_outputs(tree, "middle_block")["middle_block"]
    np.testing.assert_allclose(np.asarray(mid), nhwc(f[f"dbg_{tag}_mid"]),
                               atol=1e-4)
  assert checked == len([k for k in f if k.startswith(("dbg_unet_in",
                                                       "dbg_unet_out",
                                                       "dbg_enc_in"))])
