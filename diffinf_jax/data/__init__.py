"""Datasets: embedded demo faces, FFHQ + Azure labels, folder + CSV."""

from diffinf_jax.data.dataset import Dataset
from diffinf_jax.data.dataset import get_dataset
from diffinf_jax.data.dataset import load_source
from diffinf_jax.data.dataset import prepare
from diffinf_jax.data.pipeline import iterate_batches
from diffinf_jax.data.pipeline import to_float_image

__all__ = ["Dataset", "get_dataset", "load_source", "prepare",
           "iterate_batches", "to_float_image"]
