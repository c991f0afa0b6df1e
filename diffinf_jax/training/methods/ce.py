"""Plain cross-entropy on the assigned (noisy) labels: the "original" baseline."""

from diffinf_jax import losses


def per_example_loss(logits, batch):
  """[B] cross-entropy to batch['label']."""
  return losses.softmax_xent(logits, batch["label"])
