"""`diffinf bench influence` figures on toy models (keys and consistency)."""

import numpy as np
import pytest

from diffinf_jax.bench import influence as bench
from diffinf_jax.influence import per_example
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
  from diffinf_jax.models import resnet
  model = resnet.ResNet18(num_classes=3, width_multiplier=0.125,
                          stem="imagenet", head_hidden=8)
  rng = np.random.default_rng(0)
  batch = {"image": rng.uniform(-1, 1, (10, 32, 32, 3)).astype(np.float32),
           "label": rng.integers(0, 3, 10).astype(np.int32)}
  variables = toy.init_with_stats(model, batch["image"])
  assert torch_peers.supports(model) and not torch_peers.supports(toy.MLP())
  exact = np.asarray(per_example.make_sq_norm_fn(model)(variables, batch))
  peer_norms = torch_peers.runner(peer, model, variables, batch, vmap_chunk=4)()
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


def _family_inputs(family):
  r = np.random.default_rng(2)
  if family == "vit":
    model = toy.tiny_vit()
    batch = {"image": r.uniform(-1, 1, (6, 8, 8, 3)).astype(np.float32),
             "label": r.integers(0, 3, 6).astype(np.int32)}
    return model, batch, per_example.softmax_xent, "image"
  model = toy.tiny_lm()
  seq = r.integers(0, 11, (6, 6)).astype(np.int32)
  return (model, {"tokens": seq[:, :-1], "label": seq[:, 1:]},
          per_example.sequence_xent, "tokens")


def test_run_bench_sequence_model():
  model, batch, loss, key = _family_inputs("lm")
  variables = toy.random_variables(model, batch[key][:1])
  out = bench.run_bench(model, variables, batch, repeats=1, vmap_chunk=3,
                        methods=("train", "exact", "vmap", "fwd_bwd"),
                        loss_fn=loss, input_key=key)
  assert out["input_shape"] == [5] and out["num_params"] > 0
  for m in ("train", "exact", "vmap", "fwd_bwd"):
    assert out["peak_memory_mb"][m] > 0
  assert out["fwd_bwd_samples_per_s"] > 0
  assert "exact_norm_share" in out and "fwd_bwd_vs_vmap_speedup" in out
  assert out["exact_vs_vmap_max_rel_err"] < 1e-4
  assert out["exact_memory_vs_train_step"] > 0
  # The plan counts the embedding's Gram and every projection's FLOPs.
  assert out["exact_gflop_per_sample"] > 0
  assert {p["rule"] for p in out["layer_plan"]} >= {"embed", "einsum",
                                                    "dense", "norm"}


@pytest.mark.torch
@pytest.mark.parametrize("family", ["vit", "lm"])
def test_torch_peers_match_exact_on_transformers(family):
  pytest.importorskip("torch")
  from diffinf_jax.bench import torch_peers
  model, batch, loss, key = _family_inputs(family)
  variables = toy.random_variables(model, batch[key][:1])
  exact = np.asarray(per_example.make_sq_norm_fn(model, loss, input_key=key)(
      variables, batch))
  assert torch_peers.supports(model)
  ran = 0
  for peer in torch_peers.PEERS:
    if not torch_peers.available(peer):
      continue
    got = torch_peers.runner(peer, model, variables, batch, vmap_chunk=4)()
    np.testing.assert_allclose(got, exact[:len(got)], rtol=1e-4,
                               err_msg=peer)
    ran += 1
  assert ran >= 1


def test_model_flag_and_bench_case():
  import argparse
  import ml_collections
  parser = argparse.ArgumentParser()
  bench.configure(parser)
  args = parser.parse_args(["--model", "transformer_lm", "--seq-len", "6",
                            "--vocab-size", "32"])
  assert (args.model, args.seq_len, args.vocab_size) == ("transformer_lm", 6,
                                                         32)
  with pytest.raises(SystemExit):
    parser.parse_args(["--model", "gpt5"])
  config = ml_collections.ConfigDict({"seed": 0, "bench": {
      "batch_size": 2, "image_size": 32}})
  case = bench.bench_case(config, "transformer_lm", seq_len=6, vocab_size=32,
                         init=False)
  assert case.batch["tokens"].shape == case.batch["label"].shape == (2, 6)
  np.testing.assert_array_equal(case.batch["tokens"][:, 1:],
                                case.batch["label"][:, :-1])  # next tokens
  assert case.input_key == "tokens" and case.model.depth == 6
