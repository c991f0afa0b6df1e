"""ProSelfLC (Wang et al., CVPR 2021): progressive self label correction.

Target q = (1 - eps) * onehot(y) + eps * stop_gradient(p), with
  eps = g(t) * l(p),
  g(t) = sigmoid(B * (t / Gamma - b))      global trust in the model, rising
                                           with training time t / Gamma
  l(p) = 1 - H(p) / log(K)                 local trust: low-entropy (confident)
                                           predictions are trusted more
and the loss is the cross-entropy H(q, p). Official defaults B = 16,
b = 0.5 (transit time at half of training); t / Gamma is the epoch progress.
"""

import jax
import jax.numpy as jnp

EXP_BASE = 16.0
TRANSIT = 0.5


def global_trust(progress, exp_base: float = EXP_BASE,
                 transit: float = TRANSIT):
  return jax.nn.sigmoid(exp_base * (progress - transit))


def local_trust(probs):
  """1 - normalised entropy, [B] in [0, 1]."""
  k = probs.shape[-1]
  ent = -jnp.sum(probs * jnp.log(jnp.clip(probs, 1e-12, 1.0)), axis=-1)
  return 1.0 - ent / jnp.log(k)


def corrected_target(logits, labels, progress):
  """[B, K] ProSelfLC target and [B] epsilon."""
  p = jax.lax.stop_gradient(jax.nn.softmax(logits, -1))
  eps = global_trust(progress) * local_trust(p)
  onehot = jax.nn.one_hot(labels, logits.shape[-1])
  return (1.0 - eps[:, None]) * onehot + eps[:, None] * p, eps


def per_example_loss(logits, batch):
  q, _ = corrected_target(logits, batch["label"], batch["progress"])
  return -jnp.sum(q * jax.nn.log_softmax(logits, -1), axis=-1)
