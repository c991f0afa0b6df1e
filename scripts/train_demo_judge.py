"""Trains the demo's independent judges (age, expression) on FRESH renders.

  python scripts/train_demo_judge.py --task age \
      --out diffinf_jax/assets/weights/demo32/judge_age
  python scripts/train_demo_judge.py --task expression \
      --out diffinf_jax/assets/weights/demo32/judge_expression

A judge says whether an image shows a label without ever having seen the
image: it is a classifier of the demo's ResNet family (configs/demo.py's
`model` section) trained with CLEAN labels on faces rendered by
`data/demo_faces.py` from a different seed than the dataset's, so its
identities (sampled from `--render-seed + 1`) are not the dataset's. It is
then scored on all images of the demo dataset (clean labels), none of which
it trained on.

Writes OUT/{params, config.json, manifest.json} (float16, the layout of the
other demo nets): `params` holds {'params', 'batch_stats'}, config.json the
`model` section, manifest.json the render spec and the accuracies. Load with
`load_judge(OUT)` below. Deterministic for a given --render-seed / --seed
(CPU, about 10 minutes per task on 2 cores).
"""

import argparse
import json
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from diffinf_jax import configuration  # noqa: E402

# The dataset renders from data.demo.seed (1234; identities from 1235); the
# judge's renders must never share those seeds.
DEFAULT_RENDER_SEED = 424242


def render_pool(task: str, num_images: int, num_identities: int, size: int,
                seed: int, age_bins) -> dict:
  """Fresh demo faces: {'image' uint8 [N, H, W, 3], 'label' [N] int64}."""
  from diffinf_jax.data import demo_faces
  raw = demo_faces.render_dataset(num_images, num_identities, size, seed,
                                  age_bins)
  label = raw["age_label"] if task == "age" else raw["expression_label"]
  keep = label >= 0
  image = np.clip(np.round((raw["image"][keep] + 1.0) * 127.5), 0,
                  255).astype(np.uint8)
  return {"image": image, "label": label[keep].astype(np.int64)}


def train_classifier(model_config, images: np.ndarray, labels: np.ndarray, *,
                     epochs: int, batch_size: int, lr: float, seed: int,
                     crop_pad: int = 2) -> dict:
  """Adam + cosine schedule, flip / pad-crop augmentation, cross-entropy.

  A loop of its own (not training.loop) so that the judge depends only on
  the model family, never on the pipeline's training code.

  Args:
    images: uint8 [N, H, W, 3]; labels: [N] int.

  Returns:
    variables {'params', 'batch_stats'} (numpy).
  """
  import functools
  import jax
  import jax.numpy as jnp
  import optax
  from diffinf_jax import models
  model = models.get_model(model_config)
  n = len(labels)
  steps_per_epoch = n // batch_size
  tx = optax.adam(optax.cosine_decay_schedule(lr, epochs * steps_per_epoch))
  variables = model.init(jax.random.key(seed),
                         jnp.zeros((1,) + images.shape[1:]), train=False)
  params, stats = variables["params"], variables["batch_stats"]
  opt_state = tx.init(params)

  @functools.partial(jax.jit, donate_argnums=(0, 1, 2))
  def step(params, stats, opt_state, x, y, rng):
    x = x.astype(jnp.float32) / 127.5 - 1.0
    f_rng, c_rng = jax.random.split(rng)
    flip = jax.random.bernoulli(f_rng, 0.5, (x.shape[0], 1, 1, 1))
    x = jnp.where(flip, x[:, :, ::-1], x)
    if crop_pad:
      h, w = x.shape[1:3]
      xp = jnp.pad(x, ((0, 0), (crop_pad,) * 2, (crop_pad,) * 2, (0, 0)),
                   mode="reflect")
      off = jax.random.randint(c_rng, (x.shape[0], 2), 0, 2 * crop_pad + 1)
      x = jax.vmap(lambda im, o: jax.lax.dynamic_slice(
          im, (o[0], o[1], 0), (h, w, im.shape[-1])))(xp, off)

    def loss_fn(p):
      (logits, _), upd = model.apply({"params": p, "batch_stats": stats}, x,
                                     train=True, mutable=["batch_stats"])
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
      return loss, (upd["batch_stats"], (logits.argmax(-1) == y).mean())

    (loss, (stats, acc)), g = jax.value_and_grad(loss_fn, has_aux=True)(
        params)
    updates, opt_state = tx.update(g, opt_state, params)
    return optax.apply_updates(params, updates), stats, opt_state, loss, acc

  rng = jax.random.key(seed + 1)
  for epoch in range(epochs):
    perm = np.random.default_rng([seed, epoch]).permutation(n)
    losses, accs = [], []
    for i in range(steps_per_epoch):
      sel = perm[i * batch_size:(i + 1) * batch_size]
      params, stats, opt_state, loss, acc = step(
          params, stats, opt_state, jnp.asarray(images[sel]),
          jnp.asarray(labels[sel], jnp.int32),
          jax.random.fold_in(rng, epoch * steps_per_epoch + i))
      losses.append(float(loss))
      accs.append(float(acc))
    logging.info("judge epoch %d/%d: loss %.4f acc %.4f", epoch + 1, epochs,
                 np.mean(losses), np.mean(accs))
  return jax.device_get({"params": params, "batch_stats": stats})


def load_judge(weights_dir: str):
  """(predict_probs(x [B, H, W, 3] in [-1, 1]) -> [B, K], manifest)."""
  import jax
  import ml_collections
  from diffinf_jax import models
  from diffinf_jax import weights
  variables, cfg, manifest = weights.load_converted(weights_dir, what="judge")
  model = models.get_model(ml_collections.ConfigDict(cfg))

  @jax.jit
  def predict_probs(x):
    return jax.nn.softmax(model.apply(variables, x, train=False)[0], -1)
  return predict_probs, manifest


def accuracy_report(predict_probs, images: np.ndarray, labels: np.ndarray,
                    num_classes: int, batch: int = 250) -> dict:
  """Accuracy, per-class accuracy and confusion of a judge (float images)."""
  preds = np.concatenate([np.asarray(predict_probs(images[i:i + batch]))
                          for i in range(0, len(images), batch)]).argmax(-1)
  conf = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(conf, (labels, preds), 1)
  return {"accuracy": float((preds == labels).mean()),
          "per_class_accuracy": [float(conf[k, k] / max(1, conf[k].sum()))
                                 for k in range(num_classes)],
          "confusion_matrix": conf.tolist(), "num_images": int(len(labels))}


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--task", choices=("age", "expression"), required=True)
  p.add_argument("--out", required=True, help="output weights directory")
  p.add_argument("--num-images", type=int, default=9000)
  p.add_argument("--num-identities", type=int, default=2000)
  p.add_argument("--render-seed", type=int, default=DEFAULT_RENDER_SEED)
  p.add_argument("--epochs", type=int, default=12)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--batch-size", type=int, default=128)
  p.add_argument("--lr", type=float, default=2e-3)
  p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                 help="config override of configs/demo.py")
  args = p.parse_args(argv)
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
  from diffinf_jax import weights
  from diffinf_jax.data import demo_faces

  config = configuration.get_config(f"configs/demo.py:task={args.task}",
                                    args.set)
  d = config.data
  if args.render_seed in (d.demo.seed, d.demo.seed + 1) or (
      args.render_seed + 1 in (d.demo.seed, d.demo.seed + 1)):
    raise ValueError(f"--render-seed {args.render_seed} overlaps the dataset's "
                     f"seeds ({d.demo.seed}, identities {d.demo.seed + 1}); "
                     "pick another")
  k = int(config.model.num_classes)
  pool = render_pool(args.task, args.num_images, args.num_identities,
                     int(d.image_size), args.render_seed, d.age_bins)
  perm = np.random.default_rng(args.seed).permutation(len(pool["label"]))
  n_val = int(round(0.1 * len(perm)))
  val_idx, train_idx = perm[:n_val], perm[n_val:]
  variables = train_classifier(
      config.model, pool["image"][train_idx], pool["label"][train_idx],
      epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
      seed=args.seed)
  model_cfg = config.model.to_dict()
  manifest = {"kind": "judge", "task": args.task, "source_file": "",
              "source_sha256": "", "source_prefix": "", "num_source_keys": 0,
              "trained_on": {"data": "demo_faces fresh renders",
                             "render_seed": args.render_seed,
                             "identity_seed": args.render_seed + 1,
                             "num_images": int(len(pool["label"])),
                             "num_identities": args.num_identities,
                             "image_size": int(d.image_size),
                             "labels": "clean", "val_fraction": 0.1},
              "train": {"epochs": args.epochs, "seed": args.seed,
                        "batch_size": args.batch_size, "lr": args.lr,
                        "schedule": "cosine", "augment": "flip, pad-crop 2"}}
  weights.write_converted(args.out, variables, model_cfg, manifest,
                         dtype="float16")
  # Scored with the stored float16 weights, as every user will load them.
  predict_probs, _ = load_judge(args.out)
  raw = demo_faces.load_or_render(d.demo.num_images, d.demo.num_identities,
                                  d.image_size, d.demo.seed, d.age_bins,
                                  d.demo.cache_dir)
  labels = raw["age_label"] if args.task == "age" else raw["expression_label"]
  keep = labels >= 0
  images = np.clip(np.round((raw["image"][keep] + 1) * 127.5), 0, 255)
  images = (images / 127.5 - 1.0).astype(np.float32)
  from diffinf_jax import fileio
  path = os.path.join(args.out, "manifest.json")
  manifest = fileio.read_json(path)   # with num_params / dtype filled in
  manifest["metrics"] = {
      "demo_dataset_clean": accuracy_report(predict_probs, images,
                                            labels[keep].astype(np.int64), k),
      "fresh_val": accuracy_report(
          predict_probs, pool["image"][val_idx].astype(np.float32) / 127.5
          - 1.0, pool["label"][val_idx], k)}
  fileio.write_json(path, manifest)
  print(json.dumps(manifest["metrics"], indent=2))
  return 0


if __name__ == "__main__":
  sys.exit(main())
