"""DiffInf: retrain with CE on the refined dataset D' (eq. 13).

D' replaces each high-influence image by its correction from
W/correct/corrected.npz and keeps every label.
"""

from diffinf_jax.correction import refined
from diffinf_jax.training.methods import ce

per_example_loss = ce.per_example_loss


def prepare_dataset(config, workdir, dataset):
  return refined.refined_dataset(dataset, workdir)
