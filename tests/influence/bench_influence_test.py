"""`diffinf bench influence` figures on a toy model (keys and consistency only)."""

import numpy as np
import pytest

from diffinf_jax.bench import influence as bench
from tests.influence import influence_toy_models as toy


def test_run_bench_reports_every_key():
  model = toy.SmallCNN()
  rng = np.random.default_rng(0)
  batch = {"image": rng.normal(size=(4, 8, 8, 3)).astype(np.float32),
           "label": np.array([0, 1, 2, 0], np.int32)}
  variables = toy.init_with_stats(model, batch["image"])
  out = bench.run_bench(model, variables, batch, repeats=1, vmap_chunk=2)
  for key in ("train_step_samples_per_s", "exact_samples_per_s",
              "vmap_samples_per_s", "last_layer_samples_per_s",
              "exact_gflops_per_s", "matmul_peak_gflops_per_s"):
    assert out[key] > 0, key
  assert set(out["peak_memory_mb"]) == {"train", "exact", "vmap", "last_layer"}
  assert out["exact_vs_vmap_max_rel_err"] < 1e-3
  assert out["exact_gflop_per_sample"] > 0


@pytest.mark.torch
@pytest.mark.parametrize("peer", ["torch_func", "opacus", "opacus_ghost",
                                  "captum_tracincp"])
def test_torch_peer_matches_exact(peer):
  pytest.importorskip("torch")
  from diffinf_jax.bench import torch_peers
  if not torch_peers.available(peer):
    pytest.skip(f"{peer}: package not installed (optional peer)")
  from diffinf_jax.influence import per_example
  from diffinf_jax.models import resnet
  model = resnet.ResNet18(num_classes=3, width_multiplier=0.125,
                          stem="imagenet", head_hidden=8)
  rng = np.random.default_rng(0)
  batch = {"image": rng.uniform(-1, 1, (10, 32, 32, 3)).astype(np.float32),
           "label": rng.integers(0, 3, 10).astype(np.int32)}
  variables = toy.init_with_stats(model, batch["image"])
  assert torch_peers.supports(model) and not torch_peers.supports(toy.MLP())
  exact = np.asarray(per_example.make_sq_norm_fn(model)(variables, batch))
  peer_norms = torch_peers.runner(peer, variables, batch, vmap_chunk=4)()
  n = 10 if peer != "captum_tracincp" else torch_peers.CAPTUM_SAMPLES
  assert peer_norms.shape == (n,)
  np.testing.assert_allclose(peer_norms, exact[:n], rtol=1e-4)


@pytest.mark.torch
def test_bench_reports_peer_keys():
  pytest.importorskip("torch")
  from diffinf_jax.models import resnet
  model = resnet.ResNet18(num_classes=3, width_multiplier=0.125,
                          stem="cifar", head_hidden=8)
  rng = np.random.default_rng(1)
  batch = {"image": rng.uniform(-1, 1, (4, 8, 8, 3)).astype(np.float32),
           "label": np.array([0, 1, 2, 0], np.int32)}
  variables = toy.init_with_stats(model, batch["image"])
  out = bench.run_bench(model, variables, batch, repeats=1, vmap_chunk=2,
                        methods=("exact", "torch_func"))
  assert out["torch_func_samples_per_s"] > 0
  assert out["exact_vs_torch_func_max_rel_err"] < 1e-3
  assert out["exact_vs_fastest_torch_speedup"] == out[
      "exact_vs_torch_func_speedup"]
