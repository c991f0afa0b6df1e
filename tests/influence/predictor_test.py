"""Influence predictor: learns a separable signal, saves/loads, differentiable."""

import jax
import jax.numpy as jnp
import numpy as np

from diffinf_jax import workdir as wd
from diffinf_jax.influence import predictor
from diffinf_jax.pipeline import predictor as predictor_stage
from tests.influence import influence_toy_models as toy


def test_predictor_learns_and_roundtrips(tmp_path):
  rng = np.random.default_rng(0)
  n, f = 200, 6
  feats = rng.normal(size=(n, f)).astype(np.float32)
  labels = rng.integers(0, 3, n)
  scores = np.exp(2.0 * feats[:, 0]) + 0.05 * rng.random(n)  # high <=> large f0
  flagged = scores >= np.quantile(scores, 0.8)  # the top 20%
  out = predictor.train_and_evaluate(
      feats, labels, flagged, num_classes=3, hidden=16, num_epochs=60,
      lr=1e-2, batch_size=50, fit_fraction=0.5, seed=0)
  assert out["metrics"]["auroc"] > 0.9
  assert out["metrics"]["train_size"] + out["metrics"]["eval_size"] == n
  cfg = {"hidden": 16, "input_dim": out["input_dim"], "num_classes": 3}
  predictor_stage.save(wd.stage_dir(str(tmp_path), "predictor"),
                       out["params"], out["mean"], out["std"], cfg)
  params, mean, std, cfg2 = wd.load_predictor(str(tmp_path))
  z = np.asarray(predictor.predictor_inputs(jnp.asarray(feats), labels, mean,
                                            std, 3))
  np.testing.assert_allclose(predictor.predict_logits(params, z, 16),
                             predictor.predict_logits(out["params"], z, 16),
                             rtol=1e-6)


def test_p_high_is_differentiable_in_the_image():
  model = toy.SmallCNN()
  x = jax.random.normal(jax.random.key(0), (3, 8, 8, 3))
  variables = toy.init_with_stats(model, x)
  mlp = predictor.InfluenceMLP(4)
  params = mlp.init(jax.random.key(1), jnp.zeros((1, 8 + 3)))
  fn = predictor.make_p_high_fn(model, variables, params, np.zeros(8),
                                np.ones(8), {"hidden": 4, "num_classes": 3})
  p = fn(x, jnp.array([0, 1, 2]))
  assert p.shape == (3,) and bool(jnp.all((p > 0) & (p < 1)))
  g = jax.grad(lambda im: jnp.sum(fn(im, jnp.array([0, 1, 2]))))(x)
  assert g.shape == x.shape and float(jnp.abs(g).sum()) > 0
