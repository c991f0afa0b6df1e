#!/usr/bin/env bash
# Re-creates the demo networks shipped in diffinf_jax/assets/weights/demo32/
# (float16) with the project's own trainers: identity, parsing and DiffAE on
# the embedded demo faces, the judges on fresh renders of other identities.
# Deterministic for the seeds in configs/demo.py. CPU, about 45 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-runs/demo_weights}
OUT=diffinf_jax/assets/weights/demo32
python scripts/train_demo_nets.py identity --config configs/demo.py --workdir "$W" --out "$OUT/arcface"
python scripts/train_demo_nets.py parsing --config configs/demo.py --workdir "$W" --out "$OUT/parsing"
if [ -f scripts/train_demo_diffae.py ]; then
  python scripts/train_demo_diffae.py --config configs/demo.py --workdir "$W" --out "$OUT/diffae"
fi
# The independent judges: trained on fresh renders of other identities, never
# on the dataset's images (about 10 minutes per task).
python scripts/train_demo_judge.py --task age --out "$OUT/judge_age"
python scripts/train_demo_judge.py --task expression --out "$OUT/judge_expression"
