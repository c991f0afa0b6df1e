"""Train state with BatchNorm statistics, optimizer and learning-rate schedule."""

from __future__ import annotations

import functools

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state


class TrainState(train_state.TrainState):
  batch_stats: Any = None


def learning_rate_fn(train_config, steps_per_epoch: int):
  """Step -> learning rate for `train.schedule` (constant | cosine)."""
  lr = float(train_config.lr)
  total = max(1, int(train_config.num_epochs) * steps_per_epoch)
  if train_config.schedule == "constant":
    return optax.constant_schedule(lr)
  if train_config.schedule == "cosine":
    return optax.cosine_decay_schedule(lr, total)
  raise ValueError(f"config train.schedule={train_config.schedule!r}: use "
                   "'constant' or 'cosine'")


def make_optimizer(train_config, lr_fn) -> optax.GradientTransformation:
  name = train_config.optimizer
  if name == "adam":
    opt = optax.adam(lr_fn)
  elif name == "adamw":
    opt = optax.adamw(lr_fn, weight_decay=float(train_config.weight_decay))
  elif name == "sgd":
    opt = optax.sgd(lr_fn, momentum=0.9)
  else:
    raise ValueError(f"config train.optimizer={name!r}: use adam, adamw, sgd")
  if name != "adamw" and train_config.weight_decay:
    opt = optax.chain(optax.add_decayed_weights(
        float(train_config.weight_decay)), opt)
  return opt


def create_train_state(model, rng, image_shape, optimizer) -> TrainState:
  """Initialises parameters and BN statistics for images of `image_shape`."""
  # jit: op-by-op init takes seconds on CPU, once per trained classifier.
  init = jax.jit(functools.partial(model.init, train=False))
  variables = init(rng, jnp.zeros((1,) + tuple(image_shape), jnp.float32))
  return TrainState.create(apply_fn=model.apply, params=variables["params"],
                           batch_stats=variables.get("batch_stats", {}),
                           tx=optimizer)


def assumed_noise_rate(config) -> float:
  """The label-noise rate a method that needs one is given: the config's
  `train.assumed_noise_rate`, or the true `noise.rate` when it is -1 (what
  Co-teaching and ProMix assume; a user does not know it)."""
  rate = float(config.train.assumed_noise_rate)
  return float(config.noise.rate) if rate < 0 else rate


def mean_lr(lr_fn, first_step: int, last_step: int) -> float:
  """Mean learning rate over optimiser steps [first_step, last_step)."""
  if last_step <= first_step:
    return float(lr_fn(first_step))
  steps = np.arange(first_step, last_step)
  return float(np.mean([float(lr_fn(int(s))) for s in steps]))
