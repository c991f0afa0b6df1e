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
  args = common.parse_arg(arg, tiny=False, balance=True)
  c = base.get_base_config()
  c.data.name = "ffhq"
  c.data.task = "expression"
  c.data.image_size = 128
  c.data.balance = args.balance
  c.model.num_classes = 4
  c.noise.rate = 0.2
  c.diffae.preset = "ffhq128"
  c.guidance.arcface_preset = "iresnet50"
  if args.tiny:
    c.data.image_size = 16
    c.data.max_images = 48
    c.model.width_multiplier = 0.125
    c.model.head_hidden = 16
    c.train.num_epochs = 1
    c.train.batch_size = 8
    c.train.save_every_epochs = 1
    c.diffae.preset = "tiny"
  return c
