#!/usr/bin/env bash
# Re-creates the demo networks shipped in diffinf_jax/assets/weights/demo32/
# (float16) by training them on the embedded demo faces with the project's own
# trainers. Deterministic for the seeds in configs/demo.py. CPU, ~10 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-runs/demo_weights}
OUT=diffinf_jax/assets/weights/demo32
python scripts/train_demo_nets.py identity --config configs/demo.py --workdir "$W" --out "$OUT/arcface"
python scripts/train_demo_nets.py parsing --config configs/demo.py --workdir "$W" --out "$OUT/parsing"
if [ -f scripts/train_demo_diffae.py ]; then
  python scripts/train_demo_diffae.py --config configs/demo.py --workdir "$W" --out "$OUT/diffae"
fi
