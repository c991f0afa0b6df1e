"""A tiny end-to-end run of one baseline, shared by the method tests."""

import os

import numpy as np
import pytest

from diffinf_jax import checkpointing
from diffinf_jax import configuration
from diffinf_jax.pipeline import data as data_stage
from diffinf_jax.pipeline import evaluate
from diffinf_jax.training import methods


@pytest.fixture
def tiny_run(tmp_path):
  """run(method, epochs) -> (workdir, dataset, eval metrics) on demo:tiny.

  Checks what every method owes the pipeline: a final checkpoint (epoch
  index epochs - 1, 0-based) with its learning rate in the metadata, and an
  evaluation of it over the whole clean test split.
  """

  def run(method: str, epochs: int = 1):
    w = str(tmp_path / "w")
    c = configuration.get_config("configs/demo.py:tiny",
                                 [f"train.num_epochs={epochs}"])
    ds = data_stage.load(c, w)
    run_dir = os.path.join(w, "m", "train")
    methods.train_method(method, c, ds, run_dir)
    metas = checkpointing.list_checkpoints(os.path.join(run_dir,
                                                        "checkpoints"))
    assert metas and metas[-1]["epoch"] == epochs - 1
    assert all(m["learning_rate"] > 0 for m in metas)
    m = evaluate.evaluate_run(c, ds, run_dir, os.path.join(w, "m", "eval"))
    assert m["num_test"] == len(ds.arrays("test", raw=True)["label"])
    assert np.isfinite(m["auroc_macro_ovr"]) and 0.0 <= m["accuracy"] <= 1.0
    return w, ds, m
  return run
