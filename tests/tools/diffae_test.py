"""`diffinf diffae` and `diffinf bench diffae` on a tiny random DiffAE."""

import json

import jax
import numpy as np

from diffinf_jax import cli
from diffinf_jax import weights
from diffinf_jax.models import diffae


def _weights(tmp_path):
  cfg = diffae.get_preset("tiny")
  v = diffae.init_variables(diffae.create_model(cfg), jax.random.key(0))
  dst = str(tmp_path / "w")
  weights.write_converted(dst, jax.device_get(v), cfg.to_dict(),
                         {"source_sha256": "", "source_prefix": "",
                          "num_source_keys": 0})
  return dst


def test_encode_decode_reconstruct(tmp_path, capsys):
  w = _weights(tmp_path)
  x0 = np.random.default_rng(0).uniform(-1, 1, (3, 16, 16, 3)).astype(
      np.float32)
  np.savez(tmp_path / "in.npz", x0=x0)
  base = ["--weights", w, "--t-encode", "4", "--t-decode", "4"]
  assert cli.main(["diffae", "reconstruct", "--input", str(tmp_path /
                                                           "in.npz"),
                   "--out", str(tmp_path / "rec.npz")] + base) == 0
  rec = np.load(tmp_path / "rec.npz")
  assert rec["z_sem"].shape == (3, 16) and rec["x_T"].shape == x0.shape
  assert rec["x0_hat"].shape == x0.shape
  np.savez(tmp_path / "lat.npz", z_sem=rec["z_sem"], x_T=rec["x_T"])
  assert cli.main(["diffae", "decode", "--input", str(tmp_path / "lat.npz"),
                   "--out", str(tmp_path / "dec.npz")] + base) == 0
  np.testing.assert_allclose(np.load(tmp_path / "dec.npz")["x0_hat"],
                             rec["x0_hat"], atol=1e-5)
  # Out of range and wrong size are clear errors.
  np.savez(tmp_path / "bad.npz", x0=x0 * 3)
  assert cli.main(["diffae", "encode", "--input", str(tmp_path / "bad.npz"),
                   "--out", str(tmp_path / "o.npz")] + base) == 1
  assert "must be in [-1, 1]" in capsys.readouterr().err
  np.savez(tmp_path / "bad2.npz", x0=x0[:, :8, :8])
  assert cli.main(["diffae", "encode", "--input", str(tmp_path / "bad2.npz"),
                   "--out", str(tmp_path / "o.npz")] + base) == 1
  assert "[B, 16, 16, 3]" in capsys.readouterr().err


def test_bench_diffae_json(capsys):
  assert cli.main(["bench", "diffae", "--config", "configs/demo.py:tiny",
                   "--config.diffae.preset=tiny", "--json"]) == 0
  out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  for key in ("encode_images_per_s", "decode_images_per_s",
              "grad_decode_images_per_s", "peak_memory_mb", "t_decode",
              "image_size", "batch_size"):
    assert key in out
  assert set(out["decode_images_per_s"]) == {"remat", "no_remat"}
