"""FFHQ age (3 classes: 0-18 / 25-40 / 50+), 30% symmetric noise, 128x128.

  diffinf run --config configs/ffhq_age.py \
      --config.data.data_dir=/data/ffhq/thumbnails128x128 \
      --config.diffae.weights_dir=weights/diffae_ffhq128 \
      --config.guidance.arcface_weights_dir=weights/arcface_r50 \
      --config.guidance.parsing_weights_dir=weights/bisenet \
      --workdir runs/ffhq_age

Labels come from the packaged Azure Face API CSV (or `data.json_dir`); only the
thumbnails have to be supplied. Classifier: ResNet-18 + 2-layer head, Adam 1e-4,
100 epochs, as in the paper.
"""

from configs import base
from configs import common


def get_config(arg=None):
  args = common.parse_arg(arg)
  c = base.get_base_config()
  c.data.name = "ffhq"
  c.data.task = "age"
  c.data.image_size = 128
  c.model.num_classes = 3
  c.noise.rate = 0.3
  c.diffae.preset = "ffhq128"
  c.guidance.arcface_preset = "iresnet50"
  # 128 px pixels are too many features for the cross-fitted logistic model:
  # ImageNet VGG16 relu3_3 at full size, 2 x 2 pooled.
  c.detection.crossfit.features = ("vgg16_relu3_3",)
  c.detection.crossfit.vgg_input_size = 128
  return c
