"""Correcting high-influence samples in batches (paper sections 3.5-3.7).

For a batch of originals x_i with assigned labels y_i:
  1. encode: z_sem = Enc(x_i), x_T = DDIM-inversion(x_i | z_sem)   (T_encode)
  2. start: per `correction.route`
       latent:      the codes as encoded;
       conditional: the same codes, decoded under the label y_i with
                    classifier-free guidance (eq. 6-8; a class-conditional
                    DiffAE, inversion under diffae.invert_label);
       zshift:      z_sem moved toward y_i by the linear probe
                    (correction.latent_shift), decoded unconditionally;
  3. optimise z_sem (and optionally x_T) through the frozen decoder
     x = DDIM(z_sem, x_T; T_decode) under eq. 9-12 (correction.optimize)
  4. decode the best iterate and measure it against the original.

Networks enter as callables (`Guidance`), so this module holds no weights and
is tested with toy networks; `diffinf_jax.correction.stage` wires the real
ones from a config.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from diffinf_jax.correction import latent_shift
from diffinf_jax.correction import losses
from diffinf_jax.correction import objective as objective_lib
from diffinf_jax.correction import optimize


@dataclasses.dataclass
class Guidance:
  """Frozen networks, each a pure function of images in [-1, 1]."""
  lpips: Callable                       # (x0, x1) -> [B]
  classifier_probs: Callable            # x -> [B, K]
  identity: Optional[Callable] = None   # x -> [B, D] embeddings
  parsing: Optional[Callable] = None    # x -> [B, h, w, C] logits
  p_high: Optional[Callable] = None     # (x, y) -> [B]


def make_terms(g: Guidance, losses_config, region_weights=None) -> dict:
  """Per-sample loss terms `term(x, batch) -> [B]` for the objective.

  `batch` holds x_ref [B, H, W, 3], label [B] and the precomputed reference
  outputs ref_embedding / ref_parsing (the originals are constants).
  """
  c = losses_config
  terms = {"perceptual": lambda x, b: losses.perceptual_loss(
      g.lpips, x, b["x_ref"], pixel_weight=float(c.pixel),
      pixel_kind=c.pixel_kind)}
  if g.identity is not None:
    terms["identity"] = lambda x, b: losses.identity_loss(
        g.identity, x, ref_embedding=b["ref_embedding"])
  if g.parsing is not None:
    rw = None if not region_weights else jnp.asarray(region_weights)
    terms["structural"] = lambda x, b: losses.structural_loss(
        g.parsing, x, kind=c.structural_kind, region_weights=rw,
        ref_logits=b["ref_parsing"])
  if g.p_high is not None:
    terms["influence"] = lambda x, b: losses.influence_loss(
        x, b["label"], p_high_fn=g.p_high)
  return terms


def reference_batch(g: Guidance, x_ref, labels) -> dict:
  batch = {"x_ref": jnp.asarray(x_ref), "label": jnp.asarray(labels)}
  if g.identity is not None:
    batch["ref_embedding"] = g.identity(batch["x_ref"])
  if g.parsing is not None:
    batch["ref_parsing"] = g.parsing(batch["x_ref"])
  return batch


ROUTES = ("latent", "conditional", "zshift")


def check_route(config, diffae, probe) -> str:
  """The validated `correction.route`; raises naming the key and the fix."""
  route = config.correction.route
  if route not in ROUTES:
    raise ValueError(f"config correction.route={route!r}: use one of "
                     f"{list(ROUTES)}")
  if route == "conditional" and not getattr(diffae, "num_classes", 0):
    raise ValueError(
        "config correction.route='conditional' needs a class-conditional "
        "DiffAE, but diffae.weights_dir holds an unconditional one: point "
        "diffae.weights_dir at conditional weights (`diffinf train-diffae` "
        "with diffae.num_classes=K), or use correction.route=zshift|latent")
  if route == "zshift" and probe is None:
    raise ValueError("correction.route='zshift' needs the latent probe "
                     "(fitted on the training split's codes by `diffinf "
                     "correct`)")
  return route


def codec_fns(diffae, config, route: str):
  """Per route: encode(x, labels) -> (z, x_T), decode(z, x_T, labels,
  remat) -> x (the edit's decoder) and reconstruct(z, x_T) -> x (the round
  trip without label or shift: the null class for conditional models).

  Every route inverts to diffae.t_max (0: the full schedule) with
  diffae.invert_refine fixed-point iterations per step; only the
  conditional one decodes under the label.
  """
  a = config.diffae
  t_enc, t_dec = int(a.t_encode), int(a.t_decode)
  t_max = int(a.t_max) or None
  invert = a.invert_label
  if invert not in ("null", "assigned"):
    raise ValueError(f"config diffae.invert_label={invert!r}: use 'null' or "
                     "'assigned'")
  conditional = route == "conditional"
  scale = float(a.guidance_scale)
  if conditional:
    from diffinf_jax.models.diffae import runtime as diffae_runtime
    diffae_runtime.check_guidance_scale(scale)

  def encode(x, y):
    by_label = conditional and invert == "assigned"
    return diffae.encode(x, t_enc, label=y if by_label else None,
                         t_max=t_max, refine=int(a.invert_refine))

  def decode(z, xt, y, remat):
    if not conditional:
      return diffae.decode(z, xt, t_dec, remat=remat, t_max=t_max)
    return diffae.decode(z, xt, t_dec, remat=remat, label=y,
                         guidance_scale=scale, t_max=t_max)

  def reconstruct(z, xt):
    return diffae.decode(z, xt, t_dec, t_max=t_max)
  return encode, decode, reconstruct


class Corrector:
  """Compiles the encode / optimise / measure functions once per batch shape.

  Args:
    diffae: object with `encode(x0, T, **kw) -> (z_sem, x_T)` and
      `decode(z_sem, x_T, T, remat=bool, **kw) -> x0` (differentiable;
      the conditional route passes label / guidance_scale / t_max).
    guidance: the frozen networks.
    config: the run config (sections diffae, losses, correction, guidance).
    probe: the linear probe on z_sem (`latent_shift.fit_probe`), for the
      zshift route.
  """

  def __init__(self, diffae, guidance: Guidance, config,
               probe: Optional[latent_shift.LinearProbe] = None):
    self.diffae = diffae
    self.g = guidance
    self.config = config
    self.route = check_route(config, diffae, probe)
    self.probe = probe
    weights = objective_lib.term_weights(config.losses)
    terms = make_terms(guidance, config.losses,
                       tuple(config.guidance.get("region_weights", ())))
    # A weighted term without its network is an error (not a silent skip).
    self.objective = objective_lib.make_objective(terms, weights)
    r = config.correction
    opt = optimize.make_optimizer(r.optimizer, float(r.lr))
    remat = bool(config.diffae.remat)
    encode, decode, reconstruct = codec_fns(diffae, config, self.route)
    self._opt = opt
    self._run = optimize.make_run_fn(
        lambda z, xt, y: decode(z, xt, y, remat), self.objective, opt,
        int(r.num_steps), bool(r.optimize_x_T))
    self._encode = jax.jit(encode)
    self._plain_decode = jax.jit(reconstruct)
    self._start = jax.jit(self._start_fn)
    self._ref = jax.jit(lambda x, y: reference_batch(guidance, x, y))
    self._measure = jax.jit(self._measure_fn)

  def _start_fn(self, z_sem, labels):
    """Initial codes [B, D] and shift lengths [B] (0 unless zshift)."""
    if self.route != "zshift":
      return z_sem, jnp.zeros(z_sem.shape[0])
    r = self.config.correction
    return latent_shift.shift_toward(self.probe, z_sem, labels,
                                     float(r.z_shift),
                                     float(r.z_shift_target))

  def _measure_fn(self, x, x_ref, labels):
    out = {"lpips": self.g.lpips(x_ref, x).reshape(x.shape[0]),
           "p_assigned": jnp.take_along_axis(
               self.g.classifier_probs(x), labels[:, None], 1)[:, 0]}
    if self.g.identity is not None:
      out["identity_cos"] = losses.cosine_similarity(self.g.identity(x),
                                                     self.g.identity(x_ref))
    if self.g.p_high is not None:
      out["p_high"] = self.g.p_high(x, labels).reshape(x.shape[0])
    return out

  def __call__(self, x_ref: np.ndarray, labels: np.ndarray) -> dict:
    """Corrects one batch; returns numpy arrays keyed by name.

    Keys: image [B, H, W, 3] (corrected, in [-1, 1]), reconstruction (decode
    of the encoded latents, no label, no shift), start (decode of the
    optimisation's initial latents under the route: the edit before any
    optimisation), z_shift [B], alive [B] (False: stopped on NaN/inf),
    best_loss [B], trace_<term> [N + 1, B], before_<metric> and
    after_<metric> [B] for lpips, p_assigned, identity_cos, p_high.
    """
    x_ref = jnp.asarray(x_ref, jnp.float32)
    labels = jnp.asarray(labels, jnp.int32)
    n_dev = jax.device_count()
    if n_dev > 1 and x_ref.shape[0] % n_dev == 0:
      # Data-parallel: samples are independent, so the batch is split over
      # all devices and the jitted steps are partitioned accordingly.
      from diffinf_jax import sharding
      spec = sharding.batch_sharding(sharding.data_mesh())
      x_ref, labels = jax.device_put(x_ref, spec), jax.device_put(labels,
                                                                  spec)
    z_sem, x_T = self._encode(x_ref, labels)
    batch = self._ref(x_ref, labels)
    z_start, shift = self._start(z_sem, labels)
    state = optimize.init_state({"z_sem": z_start, "x_T": x_T}, self._opt,
                                bool(self.config.correction.optimize_x_T))
    state, trace = self._run(state, batch)
    corrected = jnp.clip(state.best_image, -1.0, 1.0)
    recon = jnp.clip(self._plain_decode(z_sem, x_T), -1.0, 1.0)
    start = jnp.clip(state.start_image, -1.0, 1.0)
    out = {"image": corrected, "reconstruction": recon, "start": start,
           "z_shift": shift, "alive": state.alive,
           "best_loss": state.best_loss}
    out.update({f"trace_{k}": v for k, v in trace.items()})
    out.update({f"before_{k}": v for k, v in
                self._measure(x_ref, x_ref, labels).items()})
    out.update({f"recon_{k}": v for k, v in
                self._measure(recon, x_ref, labels).items()})
    out.update({f"start_{k}": v for k, v in
                self._measure(start, x_ref, labels).items()})
    out.update({f"after_{k}": v for k, v in
                self._measure(corrected, x_ref, labels).items()})
    return jax.tree_util.tree_map(np.asarray, out)
