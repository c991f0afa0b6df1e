"""Label-conditioned DiffAE: zero-init extension, guidance, gradients, errors."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffinf_jax.models.diffae import runtime as diffae_runtime
from diffinf_jax import weights
from diffinf_jax.models import diffae

K = 3


def _perturbed(variables, seed=7, scale=0.05):
  """Random non-zero weights everywhere (incl. the class embedding), so that
  every branch of the model matters."""
  leaves, tree = jax.tree_util.tree_flatten(variables)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  return jax.tree_util.tree_unflatten(tree, [
      np.asarray(v + scale * jax.random.normal(k, v.shape))
      for v, k in zip(leaves, keys)])


@pytest.fixture(scope="module")
def uncond():
  cfg = diffae.get_preset("tiny")
  v = diffae.init_variables(diffae.create_model(cfg), jax.random.key(0))
  return cfg, _perturbed(v)


@pytest.fixture(scope="module")
def cond(uncond):
  cfg, v = uncond
  v, cfg = diffae.extend_variables(v, cfg, K)
  return diffae_runtime.DiffAEModel(cfg, _perturbed(v, seed=9))


def _inputs(b=4, seed=1):
  k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
  x0 = jax.random.uniform(k1, (b, 16, 16, 3), minval=-1, maxval=1)
  x_t = jax.random.normal(k2, (b, 16, 16, 3))
  t = jax.random.randint(k3, (b,), 0, 1000)
  return x0, x_t, t


def test_num_classes_0_is_the_unconditional_model():
  cfg = diffae.get_preset("tiny")
  assert cfg.num_classes == 0
  rng = jax.random.key(3)
  v0 = diffae.init_variables(diffae.create_model(cfg), rng)
  ck = dataclasses.replace(cfg, num_classes=K)
  vk = diffae.init_variables(diffae.create_model(ck), rng)
  assert "label_emb" not in v0["params"]["unet"]
  emb = vk["params"]["unet"].pop("label_emb")["embedding"]
  assert emb.shape == (K + 1, cfg.embed_channels)
  np.testing.assert_array_equal(emb, 0.0)
  # Same rng -> the same weights for every shared module (names, not order,
  # seed Flax's initialisers) ...
  chex_equal = jax.tree_util.tree_map(np.array_equal, v0, vk)
  assert all(jax.tree_util.tree_leaves(chex_equal))
  # ... and identical eps for every label.
  vk["params"]["unet"]["label_emb"] = {"embedding": emb}
  _, x_t, t = _inputs()
  z = jax.random.normal(jax.random.key(4), (4, cfg.enc_out_channels))
  ref = diffae_runtime.DiffAEModel(cfg, v0).eps(x_t, t, z)
  ae = diffae_runtime.DiffAEModel(ck, vk)
  for c in range(K + 1):
    np.testing.assert_array_equal(
        ae.eps(x_t, t, z, jnp.full((4,), c)), ref)


def test_extended_checkpoint_reproduces_unconditional_exactly(uncond,
                                                              tmp_path):
  cfg, v = uncond
  weights.write_converted(str(tmp_path / "w"), v, cfg.to_dict(),
                          {"kind": "diffae"})
  plain = diffae_runtime.load_diffae(str(tmp_path / "w"))
  ext = diffae_runtime.load_diffae(str(tmp_path / "w"), num_classes=K,
                               extend=True)
  assert plain.num_classes == 0 and ext.num_classes == K
  x0, x_t, t = _inputs()
  z = plain.encode_semantic(x0)
  np.testing.assert_array_equal(ext.encode_semantic(x0), z)
  for c in (0, K - 1, "null"):
    lab = ext.labels(c, 4)
    np.testing.assert_array_equal(ext.eps(x_t, t, z, lab),
                                  plain.eps(x_t, t, z))
  for t_max in (None, 300):
    zp, xp = plain.encode(x0, 3, t_max=t_max)
    ze, xe = ext.encode(x0, 3, t_max=t_max)
    np.testing.assert_array_equal(xe, xp)
    ref = plain.decode(zp, xp, 3, t_max=t_max)
    np.testing.assert_array_equal(ext.decode(ze, xe, 3, t_max=t_max), ref)
    np.testing.assert_array_equal(
        ext.decode(ze, xe, 3, label=jnp.array([0, 1, 2, 0]),
                   guidance_scale=1.0, t_max=t_max), ref)


@pytest.mark.parametrize("t_max", [None, 400])
def test_guidance_scale_0_and_1(cond, t_max):
  x0, _, _ = _inputs()
  label = jnp.array([0, 1, 2, 1])
  z, x_T = cond.encode(x0, 3, t_max=t_max)
  null = cond.decode(z, x_T, 3, t_max=t_max)
  plain = cond.decode(z, x_T, 3, label=label, guidance_scale=1.0,
                      t_max=t_max)
  assert float(jnp.abs(null - plain).max()) > 1e-3   # the label matters
  np.testing.assert_array_equal(
      cond.decode(z, x_T, 3, label=label, guidance_scale=0.0, t_max=t_max),
      null)
  # A traced scale takes the batched two-branch path: same values up to
  # float32 rounding (a doubled batch changes the convolutions' summation
  # order, and x0 prediction at t = 900 amplifies it; measured 1.7e-5).
  dec = jax.jit(lambda w: cond.decode(z, x_T, 3, label=label,
                                      guidance_scale=w, t_max=t_max))
  np.testing.assert_allclose(dec(jnp.float32(0.0)), null, atol=1e-4)
  np.testing.assert_allclose(dec(jnp.float32(1.0)), plain, atol=1e-4)
  # w = 2 extrapolates: eps2 = 2 eps_c - eps_null at every step.
  g2 = dec(jnp.float32(2.0))
  assert float(jnp.abs(g2 - plain).max()) > 1e-4


def test_guided_eps_is_one_batched_call(cond):
  _, x_t, t = _inputs()
  z = jax.random.normal(jax.random.key(5), (4, cond.config.enc_out_channels))
  label = jnp.array([2, 0, 1, 1])
  null = jnp.full((4,), K)
  calls = []
  from diffinf_jax.diffusion import ddim

  def eps_fn(x, t, c, z):
    calls.append(x.shape[0])
    return cond.eps(x, t, z, c)
  fn = ddim.guided_eps_fn(eps_fn, label, K, 2.5, z)
  out = fn(x_t, t)
  assert calls == [8]
  e_c, e_u = cond.eps(x_t, t, z, label), cond.eps(x_t, t, z, null)
  np.testing.assert_allclose(out, e_u + 2.5 * (e_c - e_u), atol=1e-5)


def test_inversion_under_a_label(cond):
  x0, _, _ = _inputs()
  _, x_null = cond.encode(x0, 3)
  _, x_null2 = cond.encode(x0, 3, label="null")
  np.testing.assert_array_equal(x_null, x_null2)
  _, x_lab = cond.encode(x0, 3, label=jnp.array([0, 1, 2, 0]))
  assert float(jnp.abs(x_lab - x_null).max()) > 1e-4


def test_gradients_through_guided_decode_match_finite_differences(cond):
  with jax.enable_x64(True):
    v64 = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64),
                                 cond.variables)
    ae = diffae_runtime.DiffAEModel(cond.config, v64)
    k1, k2, k3, k4 = jax.random.split(jax.random.key(11), 4)
    # A short partial schedule keeps x0_pred inside [-1, 1] (no clipping
    # kinks for the finite differences to straddle).
    z = 0.5 * jax.random.normal(k1, (2, cond.config.enc_out_channels),
                                jnp.float64)
    x_T = 0.3 * jax.random.normal(k2, (2, 16, 16, 3), jnp.float64)
    r = jax.random.normal(k3, (2, 16, 16, 3), jnp.float64)
    label = jnp.array([0, 2])

    def loss(z, x_T):
      x = ae.decode(z, x_T, 2, remat=True, label=label,
                    guidance_scale=jnp.float64(2.0), t_max=40)
      return jnp.sum(x * r)

    gz, gx = jax.jit(jax.grad(loss, argnums=(0, 1)))(z, x_T)
    assert np.all(np.isfinite(gz)) and np.all(np.isfinite(gx))
    assert float(jnp.abs(gz).max()) > 0
    dz = jax.random.normal(k4, z.shape, jnp.float64)
    dx = jax.random.normal(k4, x_T.shape, jnp.float64)
    # GroupNorm computes in float32 even here (upstream's GroupNorm32), so
    # the step must be large enough for float32 rounding (~1e-7 |loss| / h)
    # and small enough for the O(h^2) truncation; both are < 1e-4 at 1e-3.
    h = 1e-3
    fd = (loss(z + h * dz, x_T + h * dx) - loss(z - h * dz, x_T - h * dx)
          ) / (2 * h)
    an = jnp.sum(gz * dz) + jnp.sum(gx * dx)
    np.testing.assert_allclose(float(an), float(fd), rtol=1e-3)


def test_gradients_float32_guided_decode_are_finite(cond):
  x0, _, _ = _inputs(2)
  z, x_T = cond.encode(x0, 3)
  g = jax.grad(lambda z: jnp.sum(cond.decode(
      z, x_T, 3, remat=True, label=jnp.array([1, 2]),
      guidance_scale=3.0) ** 2))(z)
  assert np.all(np.isfinite(g)) and float(jnp.abs(g).max()) > 0


def test_bad_inputs_are_one_line_errors(uncond, cond, tmp_path):
  cfg, v = uncond
  x0, _, _ = _inputs(2)
  z, x_T = cond.encode(x0, 2)

  def check(match, fn):
    with pytest.raises(ValueError, match=match) as e:
      fn()
    assert "\n" not in str(e.value)

  # 0..2 are classes, 3 the null class; 4 is out of range.
  check(r"label 4 is outside the generator's classes 0\.\.2 \(null class "
        r"3; diffae.num_classes=3\)",
        lambda: cond.decode(z, x_T, 2, label=np.array([0, 4])))
  check(r"label -1 is outside",
        lambda: cond.encode(x0, 2, label=np.array([-1, 0])))
  check(r"diffae.guidance_scale=nan",
        lambda: cond.decode(z, x_T, 2, label=1, guidance_scale=float("nan")))
  check(r"diffae.guidance_scale=-0.5",
        lambda: cond.decode(z, x_T, 2, label=1, guidance_scale=-0.5))
  check(r"diffae.invert_label='clean'",
        lambda: cond.encode(x0, 2, label="clean"))
  plain = diffae_runtime.DiffAEModel(cfg, v)
  zp, xp = plain.encode(x0, 2)
  check(r"unconditional.*diffae.extend_unconditional=True",
        lambda: plain.decode(zp, xp, 2, label=np.array([0, 1])))
  check(r"unconditional.*diffae.extend_unconditional=True",
        lambda: plain.encode(x0, 2, label=np.array([0, 1])))
  weights.write_converted(str(tmp_path / "w"), v, cfg.to_dict(),
                          {"kind": "diffae"})
  check(r"unconditional but diffae.num_classes=3: set "
        r"diffae.extend_unconditional=True",
        lambda: diffae_runtime.load_diffae(str(tmp_path / "w"), num_classes=3))
  weights.write_converted(str(tmp_path / "c"), cond.variables,
                          cond.config.to_dict(), {"kind": "diffae"})
  check(r"have 3 classes but diffae.num_classes=4",
        lambda: diffae_runtime.load_diffae(str(tmp_path / "c"), num_classes=4))
  check(r"already class-conditional",
        lambda: diffae.extend_variables(cond.variables, cond.config, 3))
  check(r"config num_classes=0 but the weights have a class embedding",
        lambda: diffae_runtime.DiffAEModel(cfg, cond.variables))
  check(r"t_max=5: must lie in \[10, 999\]",
        lambda: cond.encode(x0, 10, t_max=5))
