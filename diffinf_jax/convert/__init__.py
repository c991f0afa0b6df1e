"""Torch-free weight mappings: numpy state dict -> Flax variables."""
