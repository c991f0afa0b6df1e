#!/usr/bin/env bash
# Trains candidate class-conditional demo DiffAEs side by side and measures
# how far each one's label decides the class of a decode
# (scripts/class_control.py). Written for one GPU: the runs share it, each
# stops after SECONDS_PER_RUN of training (the steps done are in its
# manifest; rerun with --steps N to reproduce on any machine).
#
#   bash scripts/train_demo_diffae_variants.sh OUT_DIR
#
# Env: SECONDS_PER_RUN (210), POOL_IMAGES (20000), NUM_EVAL (128),
# ADVERSARY ("0 0.05 0.5": diffae.train.z_adversary values), TASKS,
# INIT_DIR (continue from INIT_DIR/diffae_TASK_advA), EXTRA ("--set k=v ..."
# after the defaults), T_MAX ("600 800 999"), GUIDANCE ("1 3").
set -uo pipefail
cd "$(dirname "$0")/.."
W=${1:?usage: $0 OUT_DIR}
S=${SECONDS_PER_RUN:-210}
mkdir -p "$W/logs" "$W/weights"
python scripts/render_label_pool.py --out-dir "$W" \
    --num-images "${POOL_IMAGES:-20000}" \
    --num-identities $(( ${POOL_IMAGES:-20000} / 5 )) || exit 1
pids=()
for task in ${TASKS:-age expression}; do
  k=3; [ "$task" = expression ] && k=4
  for adv in ${ADVERSARY:-0 0.05 0.5}; do
    name=diffae_${task}_adv${adv}
    init=()
    [ -n "${INIT_DIR:-}" ] && init=(--set "diffae.train.init_weights_dir=$INIT_DIR/$name")
    python scripts/train_demo_diffae.py --config "configs/demo.py:task=$task" \
        --workdir "$W/runs/$name" --out "$W/weights/$name" \
        --steps 10000000 --max-seconds "$S" \
        --set diffae.num_classes=$k --set diffae.train.labels=pool \
        --set diffae.train.pool_file="$W/pool_$task.npz" \
        --set diffae.train.label_dropout=0.15 \
        --set diffae.train.z_dropout=0.3 \
        --set diffae.train.x0_weight_cap=5 \
        --set diffae.train.batch_size=128 --set diffae.train.lr=3e-4 \
        --set diffae.train.ema_decay=0.999 \
        --set diffae.train.save_every_steps=0 \
        --set diffae.train.sample_every_steps=0 \
        --set diffae.train.z_adversary=$adv "${init[@]}" ${EXTRA:-} \
        > "$W/logs/train_$name.log" 2>&1 &
    pids+=($!)
  done
done
wait "${pids[@]}"
pids=()
for d in "$W"/weights/diffae_*; do
  name=$(basename "$d"); task=${name#diffae_}; task=${task%_adv*}
  python scripts/class_control.py --config "configs/demo.py:task=$task" \
      --diffae "$d" --num "${NUM_EVAL:-128}" --t-max ${T_MAX:-600 800 999} \
      --guidance ${GUIDANCE:-1 3} --json "$W/control_$name.json" \
      > "$W/logs/control_$name.log" 2>&1 &
  pids+=($!)
done
wait "${pids[@]}"
for f in "$W"/logs/control_*.log; do echo "== $f"; grep -v Warning "$f"; done
grep -h '"num_steps"' "$W"/weights/*/manifest.json | head -1 >/dev/null
