"""Demo guidance trainers on tiny synthetic data (seconds)."""

import jax
import numpy as np
import pytest

from diffinf_jax.models.guidance import arcface, face_parsing
from diffinf_jax.models.guidance import trainers as gt


def _tiny_ids(n=32, size=16):
  rng = np.random.default_rng(0)
  ids = np.arange(n) % 4
  colors = rng.uniform(-0.8, 0.8, (4, 3))
  x = colors[ids][:, None, None, :] + 0.1 * rng.normal(size=(n, size, size, 3))
  return np.clip(x, -1, 1).astype(np.float32), ids * 7 + 3  # arbitrary ids


def test_train_identity_separates_ids():
  x, ids = _tiny_ids()
  cfg = arcface.ArcFaceConfig(layers=(1, 1, 1, 1), widths=(8, 8, 8, 8),
                              stem_width=8, num_features=16,
                              input_size=(16, 16))
  s = gt.TrainSettings(num_steps=30, batch_size=16, lr=3e-3, log_every=0)
  variables, metrics = gt.train_identity(x, ids, cfg, s)
  assert metrics["num_identities"] == 4 and np.isfinite(metrics["final_loss"])
  emb = gt.embed_all(variables, cfg, x)
  assert emb.shape == (32, 16)
  assert gt.identity_verification_auc(emb, ids) > 0.9
  # Same tree as a converted backbone.
  ref = jax.eval_shape(lambda r: arcface.init_variables(arcface.IResNet(cfg),
                                                        r), jax.random.key(0))
  assert (jax.tree_util.tree_structure(ref) ==
          jax.tree_util.tree_structure(variables))


def test_train_identity_rejects_wrong_size():
  x, ids = _tiny_ids(size=20)
  with pytest.raises(ValueError, match="crop them first"):
    gt.train_identity(x, ids, arcface.preset("demo"), gt.TrainSettings(1))


def test_train_parsing_learns_a_simple_map():
  rng = np.random.default_rng(1)
  n, size = 8, 32
  y = np.zeros((n, size, size), np.int64)
  y[:, 8:24, 8:24] = 1
  y[:, 12:20, 12:20] = 2
  x = np.stack([np.where(y == 1, 0.6, np.where(y == 2, -0.6, 0.0))] * 3, -1)
  x = (x + 0.05 * rng.normal(size=x.shape)).astype(np.float32)
  cfg = face_parsing.preset("demo", num_classes=3, input_size=(32, 32))
  s = gt.TrainSettings(num_steps=40, batch_size=8, lr=5e-3, log_every=0)
  variables, metrics = gt.train_parsing(x, y, cfg, s)
  assert np.isfinite(metrics["final_loss"])
  assert gt.parsing_accuracy(variables, cfg, x, y) > 0.8
  with pytest.raises(ValueError, match="the parser has 3"):
    gt.train_parsing(x, y + 2, cfg, s)
