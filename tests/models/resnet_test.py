"""ResNet-18 + two-layer head: shapes, features, parameter counts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffinf_jax import configuration
from diffinf_jax import models
from diffinf_jax.models import resnet


def test_full_width_parameter_count_matches_resnet18():
  model = resnet.ResNet18(num_classes=3, head_hidden=256)
  shapes = jax.eval_shape(lambda x: model.init(jax.random.key(0), x),
                          jax.ShapeDtypeStruct((1, 128, 128, 3), jnp.float32))
  n = sum(np.prod(s.shape) for s in jax.tree_util.tree_leaves(
      shapes["params"]))
  # torchvision resnet18 trunk without fc: 11,176,512; head 512*256+256 +
  # 256*3+3.
  assert n == 11176512 + 512 * 256 + 256 + 256 * 3 + 3


@pytest.mark.parametrize("stem,size", [("imagenet", 64), ("cifar", 16)])
def test_outputs_and_features(stem, size):
  model = resnet.ResNet18(num_classes=4, width_multiplier=0.125, stem=stem,
                          head_hidden=8)
  x = jax.random.normal(jax.random.key(1), (2, size, size, 3))
  variables = model.init(jax.random.key(0), x)
  logits, aux = model.apply(variables, x, train=False)
  assert logits.shape == (2, 4) and aux["features"].shape == (2, 8)
  assert aux["pooled"].shape == (2, 64)
  assert np.all(np.asarray(aux["features"]) >= 0)  # after ReLU
  # The features feed the head's output layer.
  head = variables["params"]["head_out"]
  np.testing.assert_allclose(
      np.asarray(aux["features"] @ head["kernel"] + head["bias"]),
      np.asarray(logits), rtol=1e-5, atol=1e-5)


def test_get_model_from_config():
  c = configuration.get_config("configs/demo.py:tiny")
  m = models.get_model(c.model)
  assert m.num_classes == 3 and m.stem == "cifar"
  with pytest.raises(ValueError, match="model.stem"):
    resnet.ResNet18(num_classes=3, stem="bogus").init(
        jax.random.key(0), jnp.zeros((1, 8, 8, 3)))
