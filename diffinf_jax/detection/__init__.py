"""Label-error detection engine: arrays in, suspicion scores and metrics out.

No file paths or I/O; numpy, scikit-learn, cleanlab (and nothing of the rest
of the package except `diffinf_jax.metrics.binary_auroc`).

Modules:
  folds         seeded label-stratified K-fold assignment
  crossfit      out-of-sample probabilities: generic driver, logistic model
  pruned        cross-fitting in rounds, each without the previous issues
  features      label-free feature blocks (pixels, grid-pooled activations)
  confident     confident learning through cleanlab (out-of-sample only)
  checkpoints   which TracIn checkpoints to sum (all | first_k | before_fit)
  detectors     self_influence, last_layer, small_loss, rank ensemble
  flagging      flagged count (tau | auto) and the top-k mask
  flip_metrics  precision@tau, precision@k, recall, AUROC vs the flip mask
  registry      detectors by name (`compute_scores`)
"""
