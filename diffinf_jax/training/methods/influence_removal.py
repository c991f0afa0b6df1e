"""Self-influence removal: drop the top-tau training samples, retrain with CE.

The flagged set is the same as DiffInf's (W/influence/scores.npy, top
`influence.tau`), so the two differ only in remove-vs-repair.
"""

from diffinf_jax.correction import refined
from diffinf_jax.training.methods import ce

per_example_loss = ce.per_example_loss


def prepare_dataset(config, workdir, dataset):
  from diffinf_jax.correction import stage
  flagged = stage.flagged_indices(workdir, float(config.influence.tau))
  return refined.remove_indices(dataset, flagged)
