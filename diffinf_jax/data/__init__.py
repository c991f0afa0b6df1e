"""Datasets: embedded demo faces, FFHQ + Azure labels, folder + CSV."""

from diffinf_jax.data.dataset import Dataset
from diffinf_jax.data.dataset import assemble
from diffinf_jax.data.dataset import load_source
from diffinf_jax.data.dataset import make_labels
from diffinf_jax.data.pipeline import iterate_batches
from diffinf_jax.data.pipeline import to_float_image
from diffinf_jax.data.pipeline import to_uint8

__all__ = ["Dataset", "assemble", "load_source", "make_labels",
           "iterate_batches", "to_float_image", "to_uint8"]
