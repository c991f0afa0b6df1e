"""`diffinf bench train --json` prints the documented keys."""

import json

from diffinf_jax import cli


def test_bench_train_json(capsys):
  assert cli.main(["bench", "train", "--config", "configs/demo.py:tiny",
                   "--json", "--steps-per-repeat", "1"]) == 0
  out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert set(out) == {"samples_per_s", "image_size", "batch_size", "devices"}
  assert out["samples_per_s"] > 0 and out["image_size"] == 32
