"""`diffinf train-diffae`: the trainer wired to the run directory (weights in
the converted layout, checkpoints, previews, resume)."""

import json
import os

import jax
import numpy as np

from diffinf_jax import configuration
from diffinf_jax.models.diffae import runtime as diffae_runtime
from diffinf_jax.pipeline import train_diffae


def _cfg(*overrides):
  return configuration.get_config(
      "configs/demo.py:tiny",
      ["data.demo.cache_dir=", "data.image_size=16", "diffae.preset=tiny",
       "diffae.train.batch_size=4", "diffae.train.save_every_steps=2",
       "diffae.train.sample_every_steps=2"] + list(overrides))


def test_writes_loadable_weights_and_resumes_to_the_same(tmp_path):
  config = _cfg()
  out = str(tmp_path / "weights")
  m = train_diffae.train_and_save(config, str(tmp_path / "w"), out,
                                  num_steps=4)
  assert m["num_steps"] == 4
  run_dir = tmp_path / "w" / "diffae_train"
  assert sorted(os.listdir(run_dir / "checkpoints")) == ["2", "4"]
  for name in ("recon_000002.png", "sample_000004.png", "recon_final.png"):
    assert (run_dir / name).exists(), name
  manifest = json.load(open(os.path.join(out, "manifest.json")))
  assert manifest["train"]["num_steps"] == 4
  # The demo's age task trains a 3-class generator on the assigned labels.
  assert manifest["trained_on"]["labels"].startswith("assigned (noisy)")
  ae = diffae_runtime.load_diffae(out)
  assert ae.config.image_size == 16 and ae.num_classes == 3
  # Interrupted after 2 steps, then resumed to 4: the same weights.
  w2 = str(tmp_path / "w2")
  train_diffae.train_and_save(config, w2, str(tmp_path / "o2"), num_steps=2)
  train_diffae.train_and_save(config, w2, str(tmp_path / "o3"), num_steps=4)
  resumed = diffae_runtime.load_diffae(str(tmp_path / "o3"))
  for a, b in zip(jax.tree_util.tree_leaves(ae.variables),
                  jax.tree_util.tree_leaves(resumed.variables)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
