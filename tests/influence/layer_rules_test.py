"""Every exact rule of the rule table against the vmap(grad) oracle, float64.

The oracle materialises each example's gradient and reports each module's
squared norm separately (`per_layer=True`), so one model that holds every
layer kind once checks each rule on its own: a wrong rule shows up in its
own layer's entry, whatever the others do.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffinf_jax.influence import layer_rules
from diffinf_jax.influence import per_example as pe
from diffinf_jax.influence import taps
from tests.influence import influence_toy_models as toy

B = 4
MASK = np.array([True, True, False, True])


def _assert_per_layer_close(exact, ref, rtol):
  assert sorted(exact) == sorted(ref)
  for k in ref:
    e, r = np.asarray(exact[k]), np.asarray(ref[k])
    assert e.dtype == np.float64, k
    assert e[2] == 0.0, k  # the padding row
    assert np.all(r[MASK] > 0), k
    rel = np.max(np.abs(e - r)[MASK] / r[MASK])
    assert rel <= rtol, (k, rel)


def _zoo_inputs():
  r = np.random.default_rng(0)
  batch = {"image": jnp.asarray(2.0 * r.normal(size=(B, 3, 3, 2))),
           # Negative ids wrap (jnp.take); repeats share a table row.
           "tokens": jnp.asarray([[1, 1, -6, 3, 6], [0, 2, 2, 2, -1],
                                  [4, 5, 6, 0, 1], [3, -4, 3, 6, 6]]),
           "label": jnp.asarray([0, 1, 2, 1]), "mask": jnp.asarray(MASK)}
  model = toy.Zoo()
  variables = toy.random_variables(model, batch["image"], batch["tokens"],
                                   dtype=jnp.float64)
  return model, variables, batch


def _norms(model, variables, batch, **kwargs):
  fn = pe.make_sq_norm_fn(model, per_layer=True, jit=False, **kwargs)
  return toy.compile_fast(fn, variables, batch)(variables, batch)


EXPECTED_RULES = {
    "ConvTranspose_0": "conv", "ConvTranspose_1": "conv",
    "ConvTranspose_2": "conv", "ConvLocal_0": "conv_local",
    "SubConv_0": "conv", "DenseGeneral_0": "einsum", "Einsum_0": "einsum",
    "DenseGeneral_1": "einsum", "Einsum_1": "einsum", "Embed_0": "embed",
    "MultiHeadDotProductAttention_0/query": "einsum",
    "MultiHeadDotProductAttention_0/key": "einsum",
    "MultiHeadDotProductAttention_0/value": "einsum",
    "MultiHeadDotProductAttention_0/out": "einsum",
    "MultiHeadDotProductAttention_0/query_ln": "norm",
    "MultiHeadDotProductAttention_0/key_ln": "norm",
    "ScaledSubDense_0": "dense", "PlainSubDense_0": "dense",
    "Embed_1": "einsum",
}


def test_every_rule_matches_vmap_float64(monkeypatch):
  with jax.enable_x64(True):
    model, variables, batch = _zoo_inputs()
    keys = ("image", "tokens")
    plan = {p["path"]: p["rule"]
            for p in pe.describe(model, variables, batch, input_key=keys)}
    assert plan == EXPECTED_RULES  # no layer left to the fallback
    ref = _norms(model, variables, batch, method="vmap", input_key=keys,
                 vmap_chunk=B)
    # Both exact forms of each rule, reduced batch-wide and (a 1-byte chunk
    # budget) one example at a time.
    for branch, budget in (("ghost", None), ("materialize", 1),
                           ("ghost", 1)):
      if budget is not None:
        monkeypatch.setattr(layer_rules, "CHUNK_BYTES", budget)
      exact = _norms(model, variables, batch, input_key=keys,
                     branch_rule=branch)
      _assert_per_layer_close(exact, ref, 1e-10)


@pytest.mark.parametrize("family", ["vit", "lm"])
def test_transformer_families_match_vmap_float64(family):
  with jax.enable_x64(True):
    r = np.random.default_rng(1)
    if family == "vit":
      model, key, loss = toy.tiny_vit(), "image", pe.softmax_xent
      batch = {"image": jnp.asarray(r.uniform(-1, 1, (B, 8, 8, 3))),
               "label": jnp.asarray([0, 1, 2, 1])}
    else:
      model, key, loss = toy.tiny_lm(), "tokens", pe.sequence_xent
      seq = jnp.asarray(r.integers(0, 11, (B, 7)))
      batch = {"tokens": seq[:, :-1], "label": seq[:, 1:]}
    batch["mask"] = jnp.asarray(MASK)
    variables = toy.random_variables(model, batch[key][:1],
                                     dtype=jnp.float64)
    exact = _norms(model, variables, batch, loss_fn=loss, input_key=key)
    ref = _norms(model, variables, batch, loss_fn=loss, input_key=key,
                 method="vmap", vmap_chunk=B)
    _assert_per_layer_close(exact, ref, 1e-10)
    plan = pe.describe(model, variables, batch, input_key=key)
    # Attention projections are exact-fast; only the class token and the
    # position embedding (parameters added, not multiplied) fall back.
    assert {p["path"] for p in plan if p["rule"] == "fallback"} <= {
        "cls_token", "pos_embed"}
    assert {p["rule"] for p in plan
            if "/attn/" in p["path"]} == {"einsum"}


def _table_grad_sq_norms(ids, g, vocab):
  """Brute force: scatter-add each example's g into a [V, F] table."""
  out = []
  for n in range(ids.shape[0]):
    table = np.zeros((vocab, g.shape[-1]))
    np.add.at(table, np.asarray(ids[n]).reshape(-1) % vocab,
              np.asarray(g[n]).reshape(-1, g.shape[-1]))
    out.append(np.sum(table**2))
  return np.array(out)


@pytest.mark.parametrize("vocab", [1, 9])
def test_embed_rule_is_the_scattered_table_gradient(vocab):
  r = np.random.default_rng(2)
  ids = r.integers(-vocab, vocab, (3, 4, 5))
  if vocab == 1:
    ids = np.zeros_like(ids)
  g = r.normal(size=(3, 4, 5, 6))
  want = _table_grad_sq_norms(ids, g, vocab)
  for rule in ("ghost", "materialize"):  # id-equality Gram / sorted segments
    got = layer_rules.embed_sq_norms(jnp.asarray(ids), jnp.asarray(g), vocab,
                                     rule)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_einsum_roles():
  spec = layer_rules.einsum_spec("...thd,hdkz->...thk", (2, 5, 3, 4),
                                 (3, 4, 6, 7), use_bias=True)
  assert (spec.positions, spec.contracted, spec.groups, spec.features,
          spec.kernel_only) == ("t", "d", "h", "k", "z")
  dg = layer_rules.dense_general_spec(4, (1, 3), (5, 7, 2, 3), use_bias=False)
  assert len(dg.positions) == 1 and len(dg.contracted) == 2
  with pytest.raises(ValueError, match="example"):
    layer_rules.EinsumSpec("bd", "bdk", "bk", (2, 3, 4), False)


def test_rule_table_is_documented():
  path = os.path.join(os.path.dirname(__file__), "..", "..", "docs",
                      "influence_api.md")
  with open(path) as f:
    doc = f.read()
  for layer, status, _ in taps.RULE_TABLE:
    assert f"| {layer} | {status} |" in doc, layer
