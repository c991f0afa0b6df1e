"""The correction stage's checks before any heavy work."""

import types

import pytest

from diffinf_jax.pipeline import correct


def test_image_size_mismatch_names_both_sizes_and_keys():
  diffae = types.SimpleNamespace(config=types.SimpleNamespace(image_size=32))
  correct.check_image_size(diffae, 32, "package:weights/demo32/diffae")
  with pytest.raises(ValueError) as e:
    correct.check_image_size(diffae, 16, "package:weights/demo32/diffae")
  msg = str(e.value)
  for part in ("32 px", "data.image_size=16", "diffae.weights_dir",
               "package:weights/demo32/diffae"):
    assert part in msg


def _fake_results(m=6):
  import numpy as np
  rng = np.random.default_rng(0)
  res = {"flipped": np.array([1, 1, 0, 0, 0, 1], bool)[:m]}
  for prefix in ("recon", "start", "after"):
    for key in ("lpips", "identity_cos", "p_high"):
      res[f"{prefix}_{key}"] = rng.uniform(size=m)
  # Images encode the class the fake judge will see (mean pixel value).
  res["reconstruction"] = np.zeros((m, 2, 2, 3))
  res["start"] = np.ones((m, 2, 2, 3))
  res["image"] = np.ones((m, 2, 2, 3))
  return res


def test_ablation_rows_judge_each_variant_and_rerun_without_terms():
  import numpy as np
  from diffinf_jax import configuration
  c = configuration.load_config_file("configs/demo.py:tiny")
  res, labels = _fake_results(), np.ones(6, np.int32)
  judge = lambda x: np.round(x.mean(axis=(1, 2, 3))).astype(int)
  seen = []

  def make_corrector(cfg):
    seen.append((float(cfg.losses.influence), float(cfg.losses.identity)))

    def run(x, y):
      n = len(y)
      return {"image": np.ones((n, 2, 2, 3)) * (cfg.losses.identity == 0),
              "after_lpips": np.full(n, 0.5),
              "after_identity_cos": np.full(n, 0.25)}
    return run

  c.correction.ablation = False
  rows = correct.ablation(c, res, judge, make_corrector, np.zeros((6, 2, 2, 3)),
                          labels)
  assert [r["variant"] for r in rows] == [
      "reconstruction only", "conditioning only (conditional)", "full objective"]
  assert rows[0]["judge_all"] == 0.0 and rows[2]["judge_all"] == 1.0
  np.testing.assert_allclose(rows[1]["lpips"], res["start_lpips"].mean())
  assert not seen
  c.correction.ablation = True
  c.losses.identity = 1.0
  c.losses.influence = 1.0
  rows = correct.ablation(c, res, judge, make_corrector, np.zeros((6, 2, 2, 3)),
                          labels)
  assert seen == [(0.0, 1.0), (1.0, 0.0)]
  assert [r["variant"] for r in rows[3:]] == ["full without L_si",
                                              "full without L_id"]
  assert rows[3]["judge_flipped"] == 0.0 and rows[4]["judge_flipped"] == 1.0
  assert rows[4]["identity_cos"] == 0.25 and rows[4]["p_high"] is None
  # No judge: the judge columns stay empty.
  rows = correct.ablation(c, res, None, make_corrector, np.zeros((6, 2, 2, 3)),
                          labels)
  assert rows[0]["judge_all"] is None
