#!/usr/bin/env bash
# Re-creates the demo networks shipped in diffinf_jax/assets/weights/demo32/
# (float16) with the project's own trainers: identity, parsing and DiffAE on
# the embedded demo faces, the judges on fresh renders of other identities.
# Deterministic for the seeds in configs/demo.py. CPU, about 45 minutes
# without the conditional age generator (GPU advised for that one).
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-runs/demo_weights}
OUT=diffinf_jax/assets/weights/demo32
python scripts/train_demo_nets.py identity --config configs/demo.py --workdir "$W" --out "$OUT/arcface"
python scripts/train_demo_nets.py parsing --config configs/demo.py --workdir "$W" --out "$OUT/parsing"
python scripts/train_demo_diffae.py --config configs/demo.py --workdir "$W" --out "$OUT/diffae"
# The class-conditional age generator (configs/demo.py, task=age): trained on
# a separately labelled pool of other identities, in two stages. The shipped
# weights were trained on one GPU with time caps (--max-seconds, shared by
# six candidate runs in stage 1, scripts/train_demo_diffae_variants.sh); the
# step counts below are the ones those runs reached (days on 2 CPU cores).
python scripts/render_label_pool.py --out-dir "$W/pool"
COND=(--set diffae.num_classes=3 --set diffae.train.labels=pool
      --set diffae.train.pool_file="$W/pool/pool_age.npz"
      --set diffae.train.label_dropout=0.15 --set diffae.train.z_dropout=0.3
      --set diffae.train.batch_size=128 --set diffae.train.lr=3e-4
      --set diffae.train.ema_decay=0.999 --set diffae.train.z_adversary=0.05
      --set diffae.train.save_every_steps=500)
python scripts/train_demo_diffae.py --config configs/demo.py:task=age \
    --workdir "$W/cond1" --out "$W/diffae_age_stage1" --steps 2252 \
    "${COND[@]}" --set diffae.train.x0_weight_cap=5
python scripts/train_demo_diffae.py --config configs/demo.py:task=age \
    --workdir "$W/cond2" --out "$OUT/diffae_age" --steps 5129 \
    "${COND[@]}" --set diffae.train.x0_weight_cap=20 \
    --set diffae.train.label_lr_mult=10 \
    --set diffae.train.init_weights_dir="$W/diffae_age_stage1"
# The independent judges: trained on fresh renders of other identities, never
# on the dataset's images (about 10 minutes per task).
python scripts/train_demo_judge.py --task age --out "$OUT/judge_age"
python scripts/train_demo_judge.py --task expression --out "$OUT/judge_expression"
