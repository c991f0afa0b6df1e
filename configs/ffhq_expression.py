"""FFHQ expression (4 classes: happy / neutral / surprised / sad), 20% noise.

  diffinf run --config configs/ffhq_expression.py \
      --config.data.data_dir=/data/ffhq/thumbnails128x128 --workdir runs/ffhq_expr

The class is the argmax over all eight Azure emotions (first maximum in Azure's
key order on ties), kept only when it is one of the four target emotions. The
classes are very imbalanced (happy : sad ~ 66 : 1), so balancing by seeded
subsampling is on by default here.
"""

from configs import base
from configs import common


def get_config(arg=None):
  args = common.parse_arg(arg, balance=True)
  c = base.get_base_config()
  c.data.name = "ffhq"
  c.data.task = "expression"
  c.data.image_size = 128
  c.data.balance = args.balance
  c.model.num_classes = 4
  c.noise.rate = 0.2
  c.diffae.preset = "ffhq128"
  c.guidance.arcface_preset = "iresnet50"
  # 128 px pixels are too many features for the cross-fitted logistic model:
  # ImageNet VGG16 relu3_3 at full size, 2 x 2 pooled.
  c.detection.crossfit.features = ("vgg16_relu3_3",)
  c.detection.crossfit.vgg_input_size = 128
  return c
