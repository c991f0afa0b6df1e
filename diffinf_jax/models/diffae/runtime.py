"""High-level DiffAE: load weights, encode x0 -> (z_sem, x_T), decode back.

  ae = load_diffae("weights/diffae_ffhq128")      # or package:weights/...
  z_sem, x_T = ae.encode(x0, T=250)                # x0 [B, H, W, 3] in [-1, 1]
  x0_hat = ae.decode(z_sem, x_T, T=20, remat=True) # differentiable

Label-conditioned editing (paper eq. 6-8, c = the assigned label) with a
class-conditional generator (`num_classes` K > 0; an unconditional checkpoint
is extended with a zero class embedding by `load_diffae(..., num_classes=K,
extend=True)`):

  z_sem, x_T = ae.encode(x0, 10, t_max=600)                # under the null class
  x_edit = ae.decode(z_sem, x_T, 10, label=y, guidance_scale=3.0, t_max=600)

decode uses classifier-free guidance eps = eps(., null) + w (eps(., c) -
eps(., null)) with both branches in one batched call; w = 0 is the null
(unconditional) decode, w = 1 the plain conditional one. Inversion runs under
the null class unless `label` is given. `t_max` inverts only up to that
timestep and decodes from there (see diffusion/ddim.py).

All methods are pure functions of their array arguments (weights are closed
over), so they can be jitted, differentiated and sharded over the batch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from diffinf_jax.diffusion import ddim
from diffinf_jax.models import diffae as diffae_models


def _concrete(x):
  """x as a numpy array when its value is known now (not under jit)."""
  try:
    return np.asarray(x)
  except (jax.errors.TracerArrayConversionError,
          jax.errors.ConcretizationTypeError):
    return None


def check_guidance_scale(scale) -> None:
  """Raises on a NaN, infinite or negative guidance scale (when concrete)."""
  value = _concrete(scale)
  if value is None:
    return
  if value.ndim or not np.isfinite(value) or value < 0:
    raise ValueError(
        f"config diffae.guidance_scale={value.tolist()}: must be one finite "
        "number >= 0 (0: unconditional, 1: plain conditional, > 1: stronger "
        "pull to the label)")


class DiffAEModel:
  """A DiffAE with frozen weights (float32), optionally class-conditional."""

  def __init__(self, config: diffae_models.DiffAEConfig, variables,
               num_timesteps: int = 1000, weights_dir: str = ""):
    if bool(config.num_classes) != diffae_models.is_conditional(variables):
      raise ValueError(
          f"DiffAE {weights_dir or 'variables'}: config num_classes="
          f"{config.num_classes} but the weights "
          f"{'have' if config.num_classes == 0 else 'lack'} a class "
          "embedding (params/unet/label_emb); the config.json does not "
          "belong to these weights")
    self.config = config
    self.model = diffae_models.DiffAE(config)
    self.variables = variables
    self.num_timesteps = num_timesteps
    self.weights_dir = weights_dir

  @property
  def num_classes(self) -> int:
    """K (0: unconditional)."""
    return int(self.config.num_classes)

  @property
  def null_label(self) -> int:
    return self.config.null_label

  def check_images(self, x) -> None:
    """Shape check (static, works under jit)."""
    c = self.config
    want = (c.image_size, c.image_size, c.in_channels)
    if x.ndim != 4 or tuple(x.shape[1:]) != want:
      raise ValueError(f"DiffAE images must be [B, {want[0]}, {want[1]}, "
                       f"{want[2]}] in [-1, 1]; got shape {tuple(x.shape)}")

  def labels(self, label, batch: int):
    """Validated labels [B] int32 for a conditional model.

    Args:
      label: "null", an int, or [B] ints in 0..K-1 (K, the null class, is
        accepted too).
      batch: B.

    Raises:
      ValueError: the model is unconditional, or a (concrete) label lies
        outside 0..K.
    """
    k = self.num_classes
    if not k:
      raise ValueError(
          f"DiffAE {self.weights_dir or ''}: a label was given but these "
          "weights are unconditional (no class embedding); set "
          "diffae.num_classes=K and diffae.extend_unconditional=True to "
          "extend them with a zero class embedding (then fine-tune with "
          "`diffinf train-diffae`), or call without label")
    if isinstance(label, str):
      if label != "null":
        raise ValueError(f"config diffae.invert_label={label!r}: use 'null' "
                         "or 'assigned'")
      return jnp.full((batch,), k, jnp.int32)
    value = _concrete(label)
    if value is not None:
      if value.ndim > 1 or (value.ndim == 1 and len(value) != batch):
        raise ValueError(f"DiffAE label must be an int or [B={batch}] ints; "
                         f"got shape {value.shape}")
      bad = value[(value < 0) | (value > k)] if value.size else value
      if bad.size:
        raise ValueError(
            f"DiffAE label {bad.reshape(-1)[0]} is outside the generator's "
            f"classes 0..{k - 1} (null class {k}; diffae.num_classes={k}): "
            "use the labels of the task the generator was trained on")
    return jnp.broadcast_to(jnp.asarray(label, jnp.int32), (batch,))

  def eps(self, x_t, t, z_sem, label=None):
    """eps [B, H, W, C]; `label` [B] is required iff the model is conditional
    (pass the null class K for the unconditional branch)."""
    if label is None and self.num_classes:
      label = jnp.full((x_t.shape[0],), self.num_classes, jnp.int32)
    return self.model.apply(self.variables, x_t, t, z_sem, label)

  def encode_semantic(self, x0):
    self.check_images(x0)
    return self.model.apply(self.variables, x0,
                            method=diffae_models.DiffAE.encode)

  def _eps_fn(self, z_sem, label=None, guidance_scale=1.0):
    """(x, t) -> eps: unconditional, one label, or guided toward `label`."""
    if label is None:
      return lambda x, t: self.eps(x, t, z_sem)
    check_guidance_scale(guidance_scale)
    label = self.labels(label, z_sem.shape[0])
    return ddim.guided_eps_fn(
        lambda x, t, c, z: self.model.apply(self.variables, x, t, z, c),
        label, self.null_label, guidance_scale, z_sem)

  def encode(self, x0, T: int, *, label=None, t_max: int | None = None,
             refine: int = 0):
    """(z_sem [B, D], x_T [B, H, W, C]) by deterministic DDIM inversion.

    Args:
      x0: [B, H, W, C] in [-1, 1].
      T: inversion steps.
      label: conditional models only: None or "null" inverts under the null
        class (the default: the label plays no part in the encoding); ints
        ([B] or one) invert under those labels.
      t_max: None: the full schedule; an int: x_T is the state at that
        timestep (partial inversion; decode with the same t_max).
      refine: fixed-point iterations per inversion step (needs t_max): each
        step becomes the exact inverse of the matching decode step, so
        decode(encode(x0)) reproduces x0 closely even at 5 steps; costs
        `refine` extra UNet calls per step, the decode is unchanged.
    """
    z = self.encode_semantic(x0)
    if label is None and self.num_classes:
      label = "null"
    x_T = ddim.invert(self._eps_fn(z, label, 1.0), x0, int(T),
                      num_timesteps=self.num_timesteps, t_max=t_max,
                      refine=int(refine))
    return z, x_T

  def check_latents(self, z_sem, x_T) -> None:
    """Shape checks of (z_sem [B, D], x_T [B, H, W, C]) (static)."""
    self.check_images(x_T)
    d = self.config.enc_out_channels
    if z_sem.ndim != 2 or z_sem.shape != (x_T.shape[0], d):
      raise ValueError(f"DiffAE z_sem must be [B, {d}] with B = {x_T.shape[0]}"
                       f" (from x_T); got shape {tuple(z_sem.shape)}")

  def decode(self, z_sem, x_T, T: int, remat: bool = False, *, label=None,
             guidance_scale=1.0, t_max: int | None = None):
    """x0 [B, H, W, C] in [-1, 1] by deterministic DDIM (eta = 0).

    Differentiable in z_sem and x_T; `remat=True` recomputes each step's
    activations in the backward pass (memory independent of T).

    Args:
      z_sem: [B, D]; x_T: [B, H, W, C] (from `encode` with the same t_max).
      T: decoding steps.
      remat: rematerialise each step in the backward pass.
      label: None: the null class (conditional models) or the plain
        unconditional model; "null"; or target classes ([B] or one int)
        decoded with classifier-free guidance.
      guidance_scale: w >= 0 (float or traced scalar): eps = eps(null) +
        w (eps(label) - eps(null)); 0 and 1 cost one UNet call per step,
        anything else one call on a doubled batch.
      t_max: as in `encode`.
    """
    self.check_latents(z_sem, x_T)
    if label is None and self.num_classes:
      label = "null"
    return ddim.decode(self._eps_fn(z_sem, label, guidance_scale), x_T,
                       int(T), num_timesteps=self.num_timesteps, remat=remat,
                       t_max=t_max)

  def edit(self, x0, label, *, t_encode: int, t_decode: int,
           guidance_scale=1.0, t_max: int | None = None, invert_label=None,
           refine: int = 0):
    """encode + decode toward `label`: (x_edit, (z_sem, x_T))."""
    z, x_T = self.encode(x0, t_encode, label=invert_label, t_max=t_max,
                         refine=refine)
    return self.decode(z, x_T, t_decode, label=label,
                       guidance_scale=guidance_scale, t_max=t_max), (z, x_T)


def load_diffae(weights_dir: str, *, num_classes: int | None = None,
                extend: bool = False) -> DiffAEModel:
  """Loads converted (`diffinf convert diffae`) or trained weights.

  Args:
    weights_dir: directory (or `package:weights/...`).
    num_classes: None: as stored; K: the generator must have K classes
      (0: unconditional).
    extend: with K > 0 and unconditional weights, add a zero class embedding
      (`models.diffae.extend_variables`): the model then reproduces the
      unconditional outputs exactly for every label until fine-tuned.

  Raises:
    FileNotFoundError: no weights; ValueError: class count mismatch, naming
      the config key and the fix.
  """
  from diffinf_jax import weights
  if not weights_dir:
    raise FileNotFoundError(
        "config diffae.weights_dir is empty: convert the official checkpoint "
        "with `diffinf convert diffae last.ckpt DIR` (or train one with "
        "`diffinf train-diffae`) and set --config.diffae.weights_dir=DIR")
  variables, cfg, _ = weights.load_converted(weights_dir,
                                             what="DiffAE weights")
  config = diffae_models.DiffAEConfig.from_dict(cfg)
  stored = int(config.num_classes)
  if num_classes is not None and int(num_classes) != stored:
    k = int(num_classes)
    if stored == 0 and k > 0 and extend:
      variables, config = diffae_models.extend_variables(variables, config, k)
    elif stored == 0 and k > 0:
      raise ValueError(
          f"DiffAE weights {weights_dir} are unconditional but "
          f"diffae.num_classes={k}: set diffae.extend_unconditional=True to "
          "add a zero class embedding (identical outputs until fine-tuned "
          "with `diffinf train-diffae`), or diffae.num_classes=0")
    else:
      raise ValueError(
          f"DiffAE weights {weights_dir} have {stored} classes but "
          f"diffae.num_classes={k}: use weights trained for this task, or "
          f"set diffae.num_classes={stored}")
  return DiffAEModel(config, variables, weights_dir=weights_dir)


def load_from_config(diffae_config) -> DiffAEModel:
  """`load_diffae` driven by the config's `diffae` section (weights_dir,
  num_classes (0: as stored), extend_unconditional)."""
  k = int(diffae_config.get("num_classes", 0))
  return load_diffae(diffae_config.weights_dir, num_classes=k or None,
                     extend=bool(diffae_config.get("extend_unconditional",
                                                   False)))


def check_range(x: np.ndarray, what: str) -> None:
  x = np.asarray(x)
  if not np.all(np.isfinite(x)):
    raise ValueError(f"{what}: contains NaN/inf")
  lo, hi = float(x.min()), float(x.max())
  if lo < -1.0 - 1e-6 or hi > 1.0 + 1e-6:
    raise ValueError(f"{what}: values in [{lo:.3f}, {hi:.3f}]; images must "
                     "be in [-1, 1] (x / 127.5 - 1 for uint8)")

