"""Correction engine: DiffAE latent optimisation of high-influence samples."""
