"""ProSelfLC (Wang et al., CVPR 2021): progressive self label correction.

Target q = (1 - eps) * onehot(y) + eps * stop_gradient(p), with
  eps = g(t) * l(p),
  g(t) = sigmoid(B * (t / Gamma - r))      global trust in the model, rising
                                           with training time t / Gamma
  l(p) = 1 - H(p) / log(K)                 local trust: low-entropy (confident)
                                           predictions are trusted more
and the loss is the cross-entropy H(q, p). B = 6 (the exp_base of the shipped
example), r = 0.5 (the CVPR transit time: labels dominate in the first half).
t / Gamma is the shared loop's training progress epoch / num_epochs (upstream
supports an epoch counter besides its iteration counter). The target is
detached (upstream's later "cross entropy" mode; the CVPR release keeps the
gradient through p, which adds eps * H(p) entropy minimisation): see
DEVIATIONS.md.
"""

import jax
import jax.numpy as jnp

from diffinf_jax import losses

EXP_BASE = 6.0
TRANSIT = 0.5


def global_trust(progress, exp_base: float = EXP_BASE,
                 transit: float = TRANSIT):
  """g(t) for progress t / Gamma in [0, 1]."""
  return jax.nn.sigmoid(exp_base * (progress - transit))


def local_trust(probs):
  """1 - normalised entropy of probs [B, K]: [B] in [0, 1]."""
  k = probs.shape[-1]
  ent = -jnp.sum(probs * jnp.log(jnp.clip(probs, 1e-12, 1.0)), axis=-1)
  return 1.0 - ent / jnp.log(k)


def corrected_target(logits, labels, progress):
  """[B, K] ProSelfLC target and [B] epsilon (both without gradient).

  Args:
    logits: [B, K]; labels: [B] int; progress: [B] or scalar in [0, 1].
  """
  p = jax.lax.stop_gradient(jax.nn.softmax(logits, -1))
  eps = global_trust(progress) * local_trust(p)
  onehot = jax.nn.one_hot(labels, logits.shape[-1])
  return (1.0 - eps[:, None]) * onehot + eps[:, None] * p, eps


def per_example_loss(logits, batch):
  """[B] cross-entropy H(q, p) to the corrected target."""
  q, _ = corrected_target(logits, batch["label"], batch["progress"])
  return losses.soft_xent(logits, q)
