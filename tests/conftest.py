"""Test set-up: CPU only, 8 fake devices (set before JAX is imported)."""

import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
if "--xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                             " --xla_force_host_platform_device_count=8").strip()

# Make `configs` importable as in an installed checkout.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
  sys.path.insert(0, _ROOT)

import pytest  # noqa: E402

# Many tests compile the same tiny networks; XLA's persistent cache makes the
# repeats cheap (a fresh CI machine starts empty, so it only speeds tests up).
from diffinf_jax import sharding  # noqa: E402

os.environ.setdefault("DIFFINF_JAX_CACHE", os.path.join(
    os.environ.get("TMPDIR", "/tmp"), "diffinf_jax_test_cache"))
sharding.enable_compilation_cache()


@pytest.fixture
def rng():
  import jax
  return jax.random.key(0)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
  """Every test renders into its own cache: nothing leaks between tests or
  from a user's ~/.cache (compiled programs are shared, see above)."""
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture
def workdir(tmp_path):
  return str(tmp_path / "work")
