"""Randomly initialised model families of `diffinf bench influence --model`.

`resnet18` is the project's classifier (diffinf_jax/models/resnet.py);
`vit.py` holds a ViT (ViT-S/16 by default) and `transformer_lm.py` a decoder
-only text transformer, both written with stock Flax layers (Conv, Embed,
MultiHeadDotProductAttention, LayerNorm, Dense) the way users write them, so
that the influence engine is measured on layers it does not special-case.
`torch_mirrors.py` builds PyTorch copies of them (same weights) for the
PyTorch peers.
"""
