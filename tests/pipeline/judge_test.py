"""The judge never trains on an image it judges."""

import numpy as np

from diffinf_jax import configuration
from diffinf_jax import fileio
from diffinf_jax import workdir as wd
from diffinf_jax.pipeline import judge
from diffinf_jax.pipeline import runner
from diffinf_jax.training import loop


def test_crossfit_judge_never_trains_on_what_it_judges(tmp_path,
                                                       monkeypatch):
  w = str(tmp_path / "w")
  c = configuration.get_config("configs/demo.py:tiny", [
      "judge.kind=crossfit", "judge.num_folds=2", "judge.num_epochs=1"])
  trained_on = []
  real = loop.train

  def spy(config, dataset, out_dir, **kw):
    trained_on.append(set(dataset.indices("train").tolist()))
    assert not dataset.flipped.any()  # the clean labels
    return real(config, dataset, out_dir, **kw)
  monkeypatch.setattr(loop, "train", spy)
  summary = runner.execute("judge", c, w)
  folds = fileio.load_npz(wd.path(w, "judge", "folds.npz"))
  assert len(trained_on) == 2
  for k, seen in enumerate(trained_on):
    held = set(folds["index"][folds["fold"] == k].tolist())
    assert held and not held & seen
    assert seen | held == set(folds["index"].tolist())
  assert 0.0 <= summary["accuracy_clean_train"] <= 1.0
  # Each image is judged by the model of its own fold.
  from diffinf_jax.pipeline import data as data_stage
  ds = data_stage.load(c, w)
  j = judge.load(c, w, ds)
  train = ds.arrays("train", raw=True)
  probs = j.predict(train["index"], train["image"])
  assert probs.shape == (len(train["index"]), 3)
  np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)


def test_shipped_judge_loads_for_the_demo(tmp_path):
  w = str(tmp_path / "w")
  c = configuration.get_config("configs/demo.py:tiny")
  assert c.judge.kind == "weights"
  summary = runner.execute("judge", c, w)
  assert summary["kind"] == "weights"
  assert 0.0 <= summary["accuracy_clean_train"] <= 1.0
