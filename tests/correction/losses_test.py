"""Correction-objective terms: minimum at x = x_ref, gradients reach x."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffinf_jax.correction import losses
from diffinf_jax.models.guidance import arcface, face_parsing, transforms


def _random_variables(shapes, seed):
  """Random variables without compiling `init` (slow on a busy CPU)."""
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    name = path[-1].key
    if name == "var":
      return jnp.ones(leaf.shape)
    if name in ("mean", "bias"):
      return jnp.zeros(leaf.shape)
    if name in ("scale", "weight"):
      return jnp.ones(leaf.shape) * (0.25 if name == "weight" else 1.0)
    fan_in = int(np.prod(leaf.shape[:-1]))
    return jnp.asarray(rng.normal(0, fan_in ** -0.5, leaf.shape), jnp.float32)
  return jax.tree_util.tree_map_with_path(fill, shapes)


def _images(seed, b=2, size=32):
  return jnp.asarray(np.random.default_rng(seed).uniform(
      -1, 1, (b, size, size, 3)).astype(np.float32))


@pytest.fixture(scope="module")
def embed_fn():
  model = arcface.build("demo")
  v = _random_variables(jax.eval_shape(
      lambda r: arcface.init_variables(model, r), jax.random.key(0)), 0)
  crop = transforms.crop_preset("full", (32, 32))
  return jax.jit(lambda x: model.apply(v, transforms.arcface_input(x, crop)))


@pytest.fixture(scope="module")
def logits_fn():
  model = face_parsing.build("demo")
  v = _random_variables(jax.eval_shape(
      lambda r: face_parsing.init_variables(model, r), jax.random.key(0)), 1)
  return jax.jit(
      lambda x: model.apply(v, transforms.parsing_input(x, (32, 32)))[0])


def _check_grad(fn, x):
  g = jax.jit(jax.grad(lambda v: jnp.sum(fn(v))))(x)
  g = np.asarray(g)
  assert np.isfinite(g).all() and np.abs(g).sum() > 0


def test_identity_loss(embed_fn):
  x, y = _images(0), _images(1)
  same = np.asarray(losses.identity_loss(embed_fn, x, x))
  np.testing.assert_allclose(same, 0.0, atol=1e-6)
  diff = np.asarray(losses.identity_loss(embed_fn, x, y))
  assert diff.shape == (2,) and (diff > 1e-4).all() and (diff <= 2).all()
  ref = embed_fn(y)
  np.testing.assert_allclose(
      losses.identity_loss(embed_fn, x, ref_embedding=ref), diff, atol=1e-6)
  _check_grad(lambda v: losses.identity_loss(embed_fn, v, y), x)


@pytest.mark.parametrize("kind", ["ce", "l2"])
def test_structural_loss(logits_fn, kind):
  x, y = _images(2), _images(3)
  same = np.asarray(losses.structural_loss(logits_fn, x, x, kind=kind))
  other = np.asarray(losses.structural_loss(logits_fn, x, y, kind=kind))
  assert same.shape == (2,) and np.isfinite(other).all()
  if kind == "l2":
    np.testing.assert_allclose(same, 0.0, atol=1e-7)
  else:
    # CE to the own argmax map is the minimum over maps of the same argmax.
    assert (same <= other + 1e-6).all()
  _check_grad(lambda v: losses.structural_loss(logits_fn, v, y, kind=kind), x)


def test_structural_region_weights():
  # Hand-made logits: 2 pixels, reference classes 0 and 1.
  ref = jnp.array([[[[5.0, 0.0], [0.0, 5.0]]]])          # [1, 1, 2, 2]
  cur = jnp.array([[[[5.0, 0.0], [5.0, 0.0]]]])          # pixel 2 wrong
  fn = lambda v: v
  full = losses.structural_loss(fn, cur, ref_logits=ref)
  only_bg = losses.structural_loss(fn, cur, ref_logits=ref,
                                   region_weights=jnp.array([1.0, 0.0]))
  only_fg = losses.structural_loss(fn, cur, ref_logits=ref,
                                   region_weights=jnp.array([0.0, 1.0]))
  ce_ok = float(jax.nn.softplus(-5.0))
  ce_bad = float(jax.nn.softplus(5.0))
  np.testing.assert_allclose(full, [(ce_ok + ce_bad) / 2], rtol=1e-5)
  np.testing.assert_allclose(only_bg, [ce_ok], rtol=1e-5)
  np.testing.assert_allclose(only_fg, [ce_bad], rtol=1e-5)
  with pytest.raises(ValueError, match="ce | l2"):
    losses.structural_loss(fn, cur, ref_logits=ref, kind="kl")


@pytest.mark.parametrize("rec_kind", ["l1", "l2"])
def test_perceptual_loss(rec_kind):
  # A cheap differentiable stand-in for LPIPS keeps this test fast; LPIPS
  # itself is tested in tests/models/guidance/lpips_test.py.
  lp = lambda a, b: jnp.mean((jnp.tanh(a) - jnp.tanh(b)) ** 2, axis=(1, 2, 3))
  x, y = _images(4), _images(5)
  same = losses.perceptual_loss(lp, x, x, pixel_weight=2.0, pixel_kind=rec_kind)
  np.testing.assert_allclose(same, 0.0, atol=1e-5)
  d = losses.perceptual_loss(lp, x, y, pixel_weight=0.0, pixel_kind=rec_kind)
  d2 = losses.perceptual_loss(lp, x, y, pixel_weight=1.0, pixel_kind=rec_kind)
  rec = np.abs(np.asarray(x - y)) if rec_kind == "l1" else np.asarray(x - y) ** 2
  np.testing.assert_allclose(d2 - d, rec.mean(axis=(1, 2, 3)), rtol=1e-4)
  _check_grad(lambda v: losses.perceptual_loss(lp, v, y, pixel_kind=rec_kind), x)
  # L1 at x == x_ref: finite gradient (0), not NaN.
  g = jax.grad(lambda v: losses.pixel_loss(v, x).sum())(x)
  assert np.isfinite(np.asarray(g)).all()


def test_perceptual_loss_with_real_lpips():
  from diffinf_jax import pretrained
  from diffinf_jax.models.guidance import lpips
  try:
    fn = lpips.distance_fn(pretrained.load_lpips())
  except FileNotFoundError as e:
    pytest.skip(str(e))
  x = _images(6, b=1, size=16)
  np.testing.assert_allclose(losses.perceptual_loss(fn, x, x), 0.0, atol=1e-6)


def test_influence_loss():
  w = jnp.ones((3,)) * 0.1
  def logits_fn(x, y):
    return jnp.mean(x, axis=(1, 2)) @ w + y.astype(jnp.float32)
  x = _images(7)
  y = jnp.array([0, 1], jnp.int32)
  p = losses.influence_loss(x, y, logits_fn=logits_fn)
  assert p.shape == (2,) and ((p > 0) & (p < 1)).all()
  np.testing.assert_allclose(
      losses.influence_loss(x, y, p_high_fn=lambda a, b: jax.nn.sigmoid(
          logits_fn(a, b))), p, atol=1e-6)
  two = lambda a, b: jnp.stack([jnp.zeros(2), logits_fn(a, b)], -1)
  np.testing.assert_allclose(losses.influence_loss(x, y, logits_fn=two), p,
                             atol=1e-6)
  nll = losses.influence_loss(x, y, logits_fn=logits_fn, log=True)
  np.testing.assert_allclose(nll, -np.log1p(-np.asarray(p)), rtol=1e-5)
  # Minimum: a predictor sure the sample is not high-influence gives ~0.
  low = losses.influence_loss(x, y, logits_fn=lambda a, b: -50 + 0 * a.sum(
      (1, 2, 3)))
  np.testing.assert_allclose(low, 0.0, atol=1e-12)
  _check_grad(lambda v: losses.influence_loss(v, y, logits_fn=logits_fn), x)
  with pytest.raises(ValueError, match="exactly one"):
    losses.influence_loss(x, y)


def test_losses_jit():
  lp = lambda a, b: jnp.mean(jnp.abs(a - b), axis=(1, 2, 3))
  f = jax.jit(lambda a, b: losses.perceptual_loss(lp, a, b))
  assert f(_images(8), _images(9)).shape == (2,)
