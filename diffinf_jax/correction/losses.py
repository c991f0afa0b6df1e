"""Terms of the correction objective (eq. 9-12): pure, batched, jit/grad-safe.

Every loss takes the networks as callables (closures over frozen params), so
this module knows nothing about weights, and returns one value per example,
shape [B]. The reference image x_ref is a constant of the optimisation: its
network outputs are wrapped in `stop_gradient` (or may be passed precomputed).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from diffinf_jax import losses as shared_losses

Array = jax.Array


def _per_example_mean(v: Array) -> Array:
  return jnp.mean(v.reshape(v.shape[0], -1), axis=1)


def cosine_similarity(a: Array, b: Array, eps: float = 1e-8) -> Array:
  """Cosine of [B, D] vectors -> [B] (normalised here: ArcFace is not)."""
  a = a.reshape(a.shape[0], -1)
  b = b.reshape(b.shape[0], -1)
  num = jnp.sum(a * b, axis=-1)
  den = jnp.sqrt(jnp.sum(a * a, -1) * jnp.sum(b * b, -1) + eps * eps)
  return num / den


def identity_loss(embed_fn: Callable[[Array], Array], x: Array,
                  x_ref: Array | None = None, *,
                  ref_embedding: Array | None = None) -> Array:
  """L_id = 1 - cos(F_id(x), F_id(x_ref)), [B]; 0 for identical faces.

  Args:
    embed_fn: images [B, H, W, 3] in [-1, 1] -> embeddings [B, D] (include the
      crop, e.g. `lambda x: arcface(transforms.arcface_input(x))`).
    x: the edited images [B, H, W, 3].
    x_ref: the originals; ignored when `ref_embedding` is given.
    ref_embedding: precomputed F_id(x_ref) [B, D].
  """
  if ref_embedding is None:
    ref_embedding = embed_fn(x_ref)
  return 1.0 - cosine_similarity(embed_fn(x),
                                 jax.lax.stop_gradient(ref_embedding))


def structural_loss(logits_fn: Callable[[Array], Array], x: Array,
                    x_ref: Array | None = None, *, kind: str = "ce",
                    region_weights: Array | None = None,
                    ref_logits: Array | None = None) -> Array:
  """Parsing-map agreement between x and x_ref, [B].

  Args:
    logits_fn: images [B, H, W, 3] in [-1, 1] -> parsing logits [B, h, w, K]
      (include the input transform).
    x, x_ref: edited and original images; x_ref ignored with `ref_logits`.
    kind: 'ce': cross-entropy of x's logits to the argmax map of x_ref
      (minimum = the entropy of x_ref's own prediction, not 0); 'l2': sum over
      classes of the squared difference of the softmax maps (0 when equal).
    region_weights: optional [K] weight per class of the reference map (e.g.
      0 for background/hair); pixels are averaged with these weights.
    ref_logits: precomputed logits of x_ref [B, h, w, K].
  """
  if ref_logits is None:
    ref_logits = logits_fn(x_ref)
  ref_logits = jax.lax.stop_gradient(ref_logits)
  logits = logits_fn(x)
  target = jnp.argmax(ref_logits, axis=-1)                  # [B, h, w]
  if kind == "ce":
    per_pixel = shared_losses.softmax_xent(logits, target)
  elif kind == "l2":
    diff = jax.nn.softmax(logits, -1) - jax.nn.softmax(ref_logits, -1)
    per_pixel = jnp.sum(diff * diff, axis=-1)
  else:
    raise ValueError(f"losses.structural_kind must be ce | l2, got {kind!r}")
  if region_weights is None:
    return _per_example_mean(per_pixel)
  w = jnp.asarray(region_weights, per_pixel.dtype)[target]
  w_sum = jnp.sum(w.reshape(w.shape[0], -1), axis=1)
  num = jnp.sum((w * per_pixel).reshape(w.shape[0], -1), axis=1)
  return num / jnp.maximum(w_sum, 1e-8)


def pixel_loss(x: Array, x_ref: Array, kind: str = "l1") -> Array:
  """Mean |x - x_ref| ('l1') or (x - x_ref)^2 ('l2') per example, [B]."""
  d = x - jax.lax.stop_gradient(x_ref)
  if kind == "l1":
    # jnp.abs has the finite subgradient 1 at d = 0, so x = x_ref is safe.
    return _per_example_mean(jnp.abs(d))
  if kind == "l2":
    return _per_example_mean(d * d)
  raise ValueError(f"losses.pixel_kind must be l1 | l2, got {kind!r}")


def perceptual_loss(lpips_fn: Callable[[Array, Array], Array], x: Array,
                    x_ref: Array, *, pixel_weight: float = 1.0,
                    pixel_kind: str = "l1") -> Array:
  """L_perc = LPIPS(x, x_ref) + pixel_weight * L1/L2(x, x_ref), [B].

  Args:
    lpips_fn: (x0, x1) [B, H, W, 3] in [-1, 1] -> [B] (e.g.
      `lpips.distance_fn(pretrained.load_lpips())`).
  """
  lp = lpips_fn(x, jax.lax.stop_gradient(x_ref)).reshape(x.shape[0])
  return lp + pixel_weight * pixel_loss(x, x_ref, pixel_kind)


def influence_loss(x: Array, y: Array, *,
                   p_high_fn: Callable[[Array, Array], Array] | None = None,
                   logits_fn: Callable[[Array, Array], Array] | None = None,
                   log: bool = False) -> Array:
  """L_si = h_omega(g(x), y): predicted probability of high influence, [B].

  Exactly one of `p_high_fn` (returns probabilities [B]) or `logits_fn`
  (returns a logit [B] of the high-influence class, or two-class logits
  [B, 2] with index 1 = high) must be given; both receive (x, y) and wrap the
  classifier g and the predictor h_omega.

  Args:
    x: images [B, H, W, 3]; y: labels [B] int32.
    log: return -log(1 - p) instead of p (unbounded, steeper near p = 1).
  """
  if (p_high_fn is None) == (logits_fn is None):
    raise ValueError("influence_loss needs exactly one of p_high_fn or "
                     "logits_fn")
  if p_high_fn is not None:
    p = p_high_fn(x, y).reshape(x.shape[0])
    return -jnp.log1p(-jnp.clip(p, 0.0, 1.0 - 1e-7)) if log else p
  z = logits_fn(x, y)
  if z.ndim == 2:
    if z.shape[-1] != 2:
      raise ValueError(f"influence logits must be [B] or [B, 2], got {z.shape}")
    z = z[:, 1] - z[:, 0]
  z = z.reshape(x.shape[0])
  # -log(1 - sigmoid(z)) = softplus(z), stable for large z.
  return jax.nn.softplus(z) if log else jax.nn.sigmoid(z)
