"""diffinf-jax: influence-guided diffusion repair of mislabeled images (DiffInf)."""

__version__ = "0.1.0"
