"""The comparison study behind the README's tables: every method, several
noise draws x training seeds, 95% intervals and paired differences.

  diffinf run --config configs/study.py:task=age --workdir runs/study_age
  diffinf run --config configs/study.py:task=expression --workdir runs/study_expr

The demo faces (configs/demo.py) with a larger clean test set (1,200 images
instead of 300; the training split keeps its 1,050 images), three noise seeds
x two training seeds = six paired runs per method. Every method of the demo
plus: the baselines told the estimated instead of the true noise rate, a tau
sweep (0.1, 0.2, 0.3 and cleanlab's estimated count) for DiffInf and removal,
the confident-learning flagged sets, and the ceilings (clean labels; the
flagged set relabelled to the clean label; only its flipped samples dropped;
the DiffAE round trip without optimisation). Measured wall time on 2 CPU
cores: README, "The study".
"""

from configs import common
from configs import demo


def get_config(arg=None):
  args = common.parse_arg(arg, task="age", tiny=False)
  c = demo.get_config(f"task={args.task}" + (",tiny" if args.tiny else ""))
  # 2,400 rendered faces: train 1,050, val 150, test 1,200.
  c.data.demo.num_images = 2400
  c.data.split.val_fraction = 0.0625
  c.data.split.test_fraction = 0.5
  c.detection.extra_flag_sets = ("self_influence:0.2", "self_influence:0.3",
                                 "self_influence:auto",
                                 "confident_learning:0.1",
                                 "confident_learning:auto")
  sets = ("", "@self_influence:0.2", "@self_influence:0.3",
          "@self_influence:auto", "@confident_learning:0.1",
          "@confident_learning:auto")
  c.compare.methods = (
      ("ce", "small_loss", "small_loss@estimated", "coteaching",
       "coteaching@estimated", "elr_plus", "proselflc", "promix",
       "promix@estimated")
      + tuple(f"influence_removal{s}" for s in sets)
      + tuple(f"diffinf{s}" for s in sets)
      + ("clean", "relabel", "drop_flipped", "recon"))
  c.compare.seeds = (0, 1)
  c.compare.num_epochs = 8
  c.study.noise_seeds = (0, 1, 2)
  c.run.stages = ("study",)
  if args.tiny:
    c.data.demo.num_images = 64
    c.detection.extra_flag_sets = ("self_influence:0.2",)
    c.compare.methods = ("ce", "small_loss", "small_loss@estimated",
                         "influence_removal", "diffinf",
                         "diffinf@self_influence:0.2", "clean", "relabel")
    c.compare.num_epochs = 1
    c.study.noise_seeds = (0, 1)
  return c
