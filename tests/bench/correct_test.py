"""`diffinf bench correct --json` with the shipped demo networks."""

import json

from diffinf_jax import cli


def test_bench_correct_json(capsys):
  assert cli.main([
      "bench", "correct", "--config", "configs/demo.py:tiny", "--json"]) == 0
  out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  for key in ("images_per_s", "peak_memory_mb", "t_decode", "steps",
              "batch_size", "remat"):
    assert key in out
  assert out["images_per_s"]["on"] > 0
  # Rematerialisation bounds memory: less than without it.
  assert out["peak_memory_mb"]["on"] < out["peak_memory_mb"]["off"]
  # Classifier-free guidance timed against the unguided conditional decode.
  g = out["guidance"]
  # The age demo guides with diffae.guidance_scale = 4 (configs/demo.py).
  assert g["guidance_scale"] == 4.0 and g["guided"] > 0 and g["unguided"] > 0
