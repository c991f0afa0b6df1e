"""Latent optimisation: per-sample independence, NaN isolation, best iterate."""

import jax.numpy as jnp
import numpy as np
import optax

from diffinf_jax.correction import objective as objective_lib
from diffinf_jax.correction import optimize


def _decode(z_sem, x_T, label):
  # A toy "generator": image = x_T + broadcast(z_sem mean).
  return x_T + jnp.mean(z_sem, axis=1)[:, None, None, None]


def _setup(b=4, num_steps=30, lr=0.1, target=None, optimize_x_T=False):
  z = jnp.zeros((b, 3))
  x_T = jnp.zeros((b, 2, 2, 1))
  target = jnp.arange(b, dtype=jnp.float32) if target is None else target
  terms = {"perceptual": lambda x, batch: jnp.mean(
      (x - batch["target"][:, None, None, None]) ** 2, axis=(1, 2, 3))}
  obj = objective_lib.make_objective(terms, {"perceptual": 1.0})
  opt = optax.adam(lr)
  run = optimize.make_run_fn(_decode, obj, opt, num_steps, optimize_x_T)
  state = optimize.init_state({"z_sem": z, "x_T": x_T}, opt, optimize_x_T)
  return run, state, {"target": target}


def test_each_sample_reaches_its_own_target():
  run, state, batch = _setup(num_steps=200)
  state, trace = run(state, batch)
  mean_z = np.asarray(state.best["z_sem"].mean(axis=1))
  np.testing.assert_allclose(mean_z, np.arange(4), atol=2e-2)
  assert trace["total"].shape == (201, 4)
  assert np.all(np.asarray(trace["total"][-1]) < np.asarray(
      trace["total"][0]) + 1e-9)
  # x_T is not optimised by default.
  np.testing.assert_array_equal(np.asarray(state.latents["x_T"]), 0.0)


def test_optimize_x_T_moves_x_T():
  run, state, batch = _setup(optimize_x_T=True)
  state, _ = run(state, batch)
  assert np.abs(np.asarray(state.latents["x_T"])).sum() > 0


def test_nan_sample_is_stopped_and_others_unaffected():
  target = jnp.array([1.0, jnp.nan, 2.0, 3.0])
  run, state, batch = _setup(target=target)
  ref_run, ref_state, _ = _setup(target=jnp.array([1.0, 0.0, 2.0, 3.0]))
  state, trace = run(state, batch)
  ref_state, _ = ref_run(ref_state, {"target": jnp.array([1.0, 0.0, 2.0, 3.0])})
  alive = np.asarray(state.alive)
  np.testing.assert_array_equal(alive, [True, False, True, True])
  keep = np.array([0, 2, 3])
  np.testing.assert_allclose(np.asarray(state.best["z_sem"])[keep],
                             np.asarray(ref_state.best["z_sem"])[keep],
                             rtol=1e-6)
  # The stopped sample keeps its initial (finite) latents.
  np.testing.assert_array_equal(np.asarray(state.best["z_sem"])[1], 0.0)
  assert np.all(np.isfinite(np.asarray(state.best["z_sem"])))


def test_best_iterate_is_kept_when_loss_rises():
  # A huge learning rate overshoots; the best iterate must be the lowest seen.
  run, state, batch = _setup(num_steps=10, lr=50.0)
  state, trace = run(state, batch)
  total = np.asarray(trace["total"])
  np.testing.assert_allclose(np.asarray(state.best_loss), total.min(axis=0),
                             rtol=1e-6)


def test_kept_images_are_the_decodes_of_the_best_and_first_iterates():
  run, state, batch = _setup(num_steps=10, lr=50.0)
  z0, xt0 = state.latents["z_sem"], state.latents["x_T"]
  state, _ = run(state, batch)
  np.testing.assert_allclose(
      np.asarray(state.best_image),
      np.asarray(_decode(state.best["z_sem"], state.best["x_T"], None)),
      rtol=1e-6)
  np.testing.assert_array_equal(np.asarray(state.start_image),
                                np.asarray(_decode(z0, xt0, None)))
  assert int(state.num_evaluated) == 11


def test_objective_weights_and_errors():
  terms = {"identity": lambda x, b: jnp.ones(x.shape[0]),
           "perceptual": lambda x, b: 2 * jnp.ones(x.shape[0])}
  obj = objective_lib.make_objective(terms, {"identity": 0.5,
                                             "perceptual": 2.0,
                                             "influence": 0.0})
  total, parts = obj(jnp.zeros((3, 2, 2, 1)), {})
  np.testing.assert_allclose(np.asarray(total), 4.5)
  assert set(parts) == {"identity", "perceptual"}
  import pytest
  with pytest.raises(KeyError, match="no network"):
    objective_lib.make_objective(terms, {"influence": 1.0})
  with pytest.raises(KeyError, match="unknown"):
    objective_lib.make_objective(terms, {"colour": 1.0})


def test_term_weights_are_the_paper_terms():
  import ml_collections
  c = ml_collections.ConfigDict(dict(identity=2.0, structural=1.5,
                                     perceptual=2.0, influence=1.5, pixel=9.0))
  assert objective_lib.term_weights(c) == {
      "identity": 2.0, "structural": 1.5, "perceptual": 2.0, "influence": 1.5}
