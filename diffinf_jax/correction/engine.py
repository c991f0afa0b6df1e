"""Correcting high-influence samples in batches (paper sections 3.5-3.7).

For a batch of originals x_i with assigned labels y_i:
  1. encode: z_sem = Enc(x_i), x_T = DDIM-inversion(x_i | z_sem)   (T_encode)
  2. optimise z_sem (and optionally x_T) through the frozen decoder
     x = DDIM(z_sem, x_T; T_decode) under eq. 9-12 (correction.optimize)
  3. decode the best iterate and measure it against the original.

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
      g.lpips, x, b["x_ref"], lambda_rec=float(c.lambda_rec),
      rec_kind=c.rec_kind)}
  if g.identity is not None:
    terms["identity"] = lambda x, b: losses.identity_loss(
        g.identity, x, ref_embedding=b["ref_embedding"])
  if g.parsing is not None:
    rw = None if not region_weights else jnp.asarray(region_weights)
    terms["structural"] = lambda x, b: losses.structural_loss(
        g.parsing, x, kind=c.struct_kind, region_weights=rw,
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


class Corrector:
  """Compiles the encode / optimise / measure functions once per batch shape.

  Args:
    diffae: object with `encode(x0, T) -> (z_sem, x_T)` and
      `decode(z_sem, x_T, T, remat=bool) -> x0` (differentiable).
    guidance: the frozen networks.
    config: the run config (sections diffae, losses, correction, guidance).
  """

  def __init__(self, diffae, guidance: Guidance, config):
    self.diffae = diffae
    self.g = guidance
    self.config = config
    weights = objective_lib.term_weights(config.losses)
    terms = make_terms(guidance, config.losses,
                       tuple(config.guidance.get("region_weights", ())))
    # A weighted term without its network is an error (not a silent skip).
    self.objective = objective_lib.make_objective(terms, weights)
    r = config.correction
    opt = optimize.make_optimizer(r.optimizer, float(r.lr))
    t_decode = int(config.diffae.t_decode)
    remat = bool(config.diffae.remat)
    self._opt = opt
    self._run = optimize.make_run_fn(
        lambda z, xt: diffae.decode(z, xt, t_decode, remat=remat),
        self.objective, opt, int(r.num_steps), bool(r.optimize_x_T))
    self._encode = jax.jit(lambda x: diffae.encode(x, int(
        config.diffae.t_encode)))
    self._decode = jax.jit(lambda z, xt: diffae.decode(z, xt, t_decode,
                                                       remat=False))
    self._ref = jax.jit(lambda x, y: reference_batch(guidance, x, y))
    self._measure = jax.jit(self._measure_fn)

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
    of the un-optimised latents), alive [B] (False: stopped on NaN/inf),
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
    z_sem, x_T = self._encode(x_ref)
    batch = self._ref(x_ref, labels)
    state = optimize.init_state({"z_sem": z_sem, "x_T": x_T}, self._opt,
                                bool(self.config.correction.optimize_x_T))
    state, trace = self._run(state, batch)
    corrected = jnp.clip(self._decode(state.best["z_sem"],
                                      state.best["x_T"]), -1.0, 1.0)
    recon = jnp.clip(self._decode(z_sem, x_T), -1.0, 1.0)
    out = {"image": corrected, "reconstruction": recon,
           "alive": state.alive, "best_loss": state.best_loss}
    out.update({f"trace_{k}": v for k, v in trace.items()})
    out.update({f"before_{k}": v for k, v in
                self._measure(x_ref, x_ref, labels).items()})
    out.update({f"after_{k}": v for k, v in
                self._measure(corrected, x_ref, labels).items()})
    return jax.tree_util.tree_map(np.asarray, out)
