"""DiffAE trainer: reconstruction improves, label dropout, conditional
fine-tuning from unconditional weights, resume, input errors (the
checkpoint and preview hooks as `diffinf train-diffae` wires them)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffinf_jax.data import demo_faces
from diffinf_jax.models import diffae
from diffinf_jax import checkpointing
from diffinf_jax.models.diffae import trainer as diffae_trainer
from diffinf_jax.pipeline import train_diffae


def test_training_improves_reconstruction(tmp_path):
  d = demo_faces.render_dataset(96, 12, 16, 0, ((0, 18), (25, 40), (50, 200)))
  ema, m = diffae_trainer.train(
      d["image"][:80], diffae.get_preset("tiny"), num_steps=300,
      batch_size=16, lr=2e-3, ema_decay=0.9, seed=0,
      eval_images=d["image"][80:],
      checkpoints=checkpointing.StateCheckpoints(
          str(tmp_path / "checkpoints")), save_every_steps=150,
      preview=train_diffae.grid_writer(str(tmp_path),
                                       diffae.get_preset("tiny")),
      sample_every_steps=300)
  # Measured: held-out denoising loss ~1.0 -> ~0.3, reconstruction MSE
  # ~0.3 -> ~0.05 (encode T=10, decode T=10).
  assert m["heldout_loss_final"] < 0.7 * m["heldout_loss_init"]
  assert m["recon_mse_final"] < 0.5 * m["recon_mse_init"]
  assert (tmp_path / "recon_final.png").exists()
  assert (tmp_path / "sample_final.png").exists()
  assert (tmp_path / "sample_000300.png").exists()
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
      "150", "300"]


def _tiny_data(n=24, seed=0):
  d = demo_faces.render_dataset(n, 6, 16, seed, ((0, 18), (25, 40), (50, 200)))
  return d["image"], d["age_label"]


def _ckpts(tmp_path, name):
  return checkpointing.StateCheckpoints(str(tmp_path / name / "checkpoints"))


def _assert_same_tree(a_tree, b_tree):
  for a, b in zip(jax.tree_util.tree_leaves(a_tree),
                  jax.tree_util.tree_leaves(b_tree)):
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_label_dropout_drops_the_expected_fraction():
  labels = jnp.asarray(np.random.default_rng(0).integers(0, 3, 20000))
  out = np.asarray(diffae_trainer.drop_labels(jax.random.key(1), labels,
                                              0.25, 3))
  dropped = out == 3
  # Binomial(20000, 0.25): sd 0.003, so 0.01 is > 3 sd.
  assert abs(dropped.mean() - 0.25) < 0.01
  np.testing.assert_array_equal(out[~dropped], np.asarray(labels)[~dropped])
  none = diffae_trainer.drop_labels(jax.random.key(1), labels, 0.0, 3)
  np.testing.assert_array_equal(none, labels)


def test_conditional_training_from_unconditional_weights_resumes(tmp_path):
  images, labels = _tiny_data()
  cfg = diffae.get_preset("tiny")
  v = diffae.init_variables(diffae.create_model(cfg), jax.random.key(5))
  ext, ck = diffae.extend_variables(v, cfg, 3)
  kw = dict(batch_size=8, lr=1e-3, ema_decay=0.9, seed=0,
            eval_images=images[:8], labels=labels, label_dropout=0.2,
            z_dropout=0.1, init_variables=ext, save_every_steps=4)
  # Before any step the extended model IS the unconditional one.
  _, m0 = diffae_trainer.train(images, cfg, num_steps=0,
                               init_variables=v, **{
                                   k: w for k, w in kw.items()
                                   if k not in ("labels", "label_dropout",
                                                "init_variables")})
  full, m = diffae_trainer.train(images, ck, num_steps=8,
                                 checkpoints=_ckpts(tmp_path, "a"), **kw)
  assert m["heldout_loss_init"] == m0["heldout_loss_init"]
  assert m["recon_mse_init"] == m0["recon_mse_init"]
  assert np.isfinite(m["train_loss_last100"])
  # The class embedding has learned something.
  assert np.abs(full["params"]["unet"]["label_emb"]["embedding"]).max() > 0
  # Interrupted after 4 steps and resumed: the same EMA weights.
  diffae_trainer.train(images, ck, num_steps=4,
                       checkpoints=_ckpts(tmp_path, "b"), **kw)
  resumed, _ = diffae_trainer.train(images, ck, num_steps=8,
                                    checkpoints=_ckpts(tmp_path, "b"), **kw)
  _assert_same_tree(full, resumed)


def test_training_input_errors():
  images, labels = _tiny_data(8)
  ck = dataclasses.replace(diffae.get_preset("tiny"), num_classes=3)
  kw = dict(num_steps=1, batch_size=4, lr=1e-3, ema_decay=0.9)
  with pytest.raises(ValueError, match="num_classes=3 needs training labels"):
    diffae_trainer.train(images, ck, **kw)
  with pytest.raises(ValueError, match=r"label 5 is outside 0\.\.2"):
    diffae_trainer.train(images, ck, labels=labels * 0 + 5, **kw)
  with pytest.raises(ValueError, match=r"diffae.train.label_dropout=1.0"):
    diffae_trainer.train(images, ck, labels=labels, label_dropout=1.0, **kw)
  with pytest.raises(ValueError, match="set diffae.num_classes=K"):
    diffae_trainer.train(images, diffae.get_preset("tiny"), labels=labels,
                         **kw)


def test_adversary_losses_pull_head_and_encoder_apart():
  head = diffae_trainer.init_adversary(jax.random.key(0), 6, 3)
  z = jax.random.normal(jax.random.key(1), (32, 6))
  label = jnp.asarray(np.arange(32) % 3)
  head_loss, enc_loss = diffae_trainer.adversary_losses(head, z, label)
  logits = diffae_trainer.adversary_logits(head, z)
  np.testing.assert_allclose(
      head_loss, -np.mean(np.asarray(jax.nn.log_softmax(logits))[
          np.arange(32), np.asarray(label)]), rtol=1e-6)
  np.testing.assert_allclose(
      enc_loss, -np.mean(np.asarray(jax.nn.log_softmax(logits))), rtol=1e-6)
  # The head's loss reaches the head only; the encoder's reaches z only.
  g_head = jax.grad(lambda h, z: diffae_trainer.adversary_losses(
      h, z, label)[0], argnums=(0, 1))(head, z)
  g_enc = jax.grad(lambda h, z: diffae_trainer.adversary_losses(
      h, z, label)[1], argnums=(0, 1))(head, z)
  assert float(jnp.abs(g_head[1]).max()) == 0.0
  assert all(float(jnp.abs(g).max()) == 0.0
             for g in jax.tree_util.tree_leaves(g_enc[0]))
  assert float(jnp.abs(g_enc[1]).max()) > 0.0
  # A code that shows no class reaches the encoder loss's bound, log K.
  flat = {**head, "w1": head["w1"] * 0}
  _, bound = diffae_trainer.adversary_losses(flat, z, label)
  assert float(bound) >= np.log(3) - 1e-6


def test_adversarial_training_resumes_and_checks_its_weight(tmp_path):
  images, labels = _tiny_data()
  ck = dataclasses.replace(diffae.get_preset("tiny"), num_classes=3)
  kw = dict(batch_size=8, lr=1e-3, ema_decay=0.9, seed=0, labels=labels,
            eval_images=images[:8], save_every_steps=3, z_adversary=0.5)
  full, m = diffae_trainer.train(images, ck, num_steps=6,
                                 checkpoints=_ckpts(tmp_path, "a"), **kw)
  assert np.isfinite(m["train_loss_last100"]) and m["num_steps"] == 6
  diffae_trainer.train(images, ck, num_steps=3,
                       checkpoints=_ckpts(tmp_path, "b"), **kw)
  resumed, _ = diffae_trainer.train(images, ck, num_steps=6,
                                    checkpoints=_ckpts(tmp_path, "b"), **kw)
  _assert_same_tree(full, resumed)
  # The adversary changes the encoder's training (same seed, weight 0).
  plain, _ = diffae_trainer.train(images, ck, num_steps=6,
                                  **{**kw, "z_adversary": 0.0,
                                     "save_every_steps": 0})
  enc_a = jax.tree_util.tree_leaves(full["params"]["encoder"])
  enc_p = jax.tree_util.tree_leaves(plain["params"]["encoder"])
  assert max(float(np.abs(a - b).max()) for a, b in zip(enc_a, enc_p)) > 0
  with pytest.raises(ValueError, match="z_adversary=-1.0"):
    diffae_trainer.train(images, ck, num_steps=1, **{**kw, "z_adversary": -1.0,
                                                     "save_every_steps": 0})
  with pytest.raises(ValueError, match="needs a class-conditional DiffAE"):
    diffae_trainer.train(images, diffae.get_preset("tiny"), num_steps=1,
                         batch_size=8, lr=1e-3, ema_decay=0.9,
                         z_adversary=0.5)


def test_max_seconds_stops_early_and_reports_the_steps_done():
  images, _ = _tiny_data(8)
  _, m = diffae_trainer.train(images, diffae.get_preset("tiny"),
                              num_steps=1000, batch_size=4, lr=1e-3,
                              ema_decay=0.9, max_seconds=1e-9)
  assert m["num_steps"] == 0 and m["train_loss_last100"] is None
