"""Diffusion schedules and deterministic DDIM (pure, jittable)."""
