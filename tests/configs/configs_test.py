"""Config files: same schema everywhere, overrides, saving."""

import json
import os

import pytest

from diffinf_jax import cli
from diffinf_jax import configuration
from diffinf_jax import pipeline

CONFIG_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "configs")
FILES = ["demo.py", "demo.py:tiny", "demo.py:task=expression",
         "demo.py:tiny,task=expression", "ffhq_age.py", "ffhq_expression.py"]


def _keys(d, prefix=""):
  out = set()
  for k, v in d.items():
    out.add(prefix + k)
    if isinstance(v, dict):
      out |= _keys(v, prefix + k + ".")
  return out


@pytest.mark.parametrize("spec", FILES)
def test_every_config_has_the_base_schema(spec):
  from configs import base
  c = configuration.get_config(os.path.join(CONFIG_DIR, spec))
  assert _keys(c.to_dict()) == _keys(base.get_base_config().to_dict())


def test_task_classes_and_noise():
  age = configuration.get_config("configs/ffhq_age.py")
  expr = configuration.get_config("configs/ffhq_expression.py")
  assert (age.model.num_classes, age.noise.rate, age.data.image_size) == (
      3, 0.3, 128)
  assert (expr.model.num_classes, expr.noise.rate) == (4, 0.2)


def test_overrides_are_typed_and_checked():
  c = configuration.get_config("demo", ["--config.noise.rate=0.25",
                                        "train.num_epochs=3",
                                        "train.augment_flip=false",
                                        "data.age_bins=((0, 10), (20, 30), "
                                        "(40, 90))"])
  assert c.noise.rate == 0.25 and c.train.num_epochs == 3
  assert c.train.augment_flip is False
  assert tuple(c.data.age_bins[0]) == (0, 10)
  with pytest.raises(KeyError, match="unknown key"):
    configuration.get_config("demo", ["noise.rat=0.3"])
  with pytest.raises(ValueError, match="cannot parse as int"):
    configuration.get_config("demo", ["train.num_epochs=abc"])
  with pytest.raises(ValueError, match=r"noise.rate=1.0"):
    configuration.get_config("demo", ["noise.rate=1.0"])
  with pytest.raises(KeyError, match="config arg"):
    configuration.get_config("configs/demo.py:bogus")
  with pytest.raises(FileNotFoundError, match="config file"):
    configuration.get_config("configs/nope.py")


def test_cli_saves_config_and_versions(tmp_path):
  w = str(tmp_path / "w")
  code = cli.main(["data", "--config", "configs/demo.py:tiny", "--workdir", w,
                   "--config.noise.rate=0.25"])
  assert code == 0
  saved = json.load(open(os.path.join(w, "config.json")))
  assert saved["noise"]["rate"] == 0.25
  versions = json.load(open(os.path.join(w, "versions.json")))
  assert "jax" in versions["packages"] and versions["stage"] == "data"
  noise = json.load(open(os.path.join(w, "data", "noise.json")))
  assert noise["rate_requested"] == 0.25
  # The work dir's config is reused when --config is omitted.
  assert cli.main(["data", "--workdir", w]) == 0


def test_cli_bad_override_is_one_clean_error(tmp_path, capsys):
  code = cli.main(["data", "--workdir", str(tmp_path / "w"),
                   "--config.noise.rate=1.5"])
  assert code == 1
  assert "noise.rate=1.5" in capsys.readouterr().err
  assert not os.path.exists(tmp_path / "w" / "data")


def test_help_lists_every_stage(capsys):
  with pytest.raises(SystemExit):
    cli.main(["--help"])
  out = capsys.readouterr().out
  for stage in pipeline.STAGES:
    assert stage in out


def test_schema_enums_match_the_code():
  """The choices configs/base.py validates are the ones the code knows."""
  from configs import base
  from diffinf_jax.detection import registry
  from diffinf_jax.influence import layer_rules
  from diffinf_jax.influence import per_example
  c = base.get_base_config()
  assert base.CHOICES["influence.branch_rule"] == layer_rules.BRANCH_RULES
  assert c.influence.branch_rule == layer_rules.DEFAULT_BRANCH_RULE
  assert base.CHOICES["influence.method"] == per_example.METHODS
  assert base.CHOICES["detection.flag_by"] == registry.DETECTORS


@pytest.mark.parametrize("task,classes,route", [("age", 3, "conditional"),
                                                ("expression", 0, "latent")])
def test_demo_generator_fits_the_task_route(task, classes, route):
  from diffinf_jax.models.diffae import runtime as diffae_runtime
  c = configuration.get_config(f"configs/demo.py:task={task}")
  assert c.correction.route == route
  ae = diffae_runtime.load_from_config(c.diffae)
  # A conditional route needs a generator with the task's classes.
  assert ae.num_classes == classes
  if classes:
    assert ae.num_classes == c.model.num_classes
