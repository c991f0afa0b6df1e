"""Frozen networks of the correction objective: ArcFace, BiSeNet, LPIPS.

Modules: `arcface` (IResNet), `face_parsing` (BiSeNet), `lpips` (VGG16 LPIPS
with local weights), `resize` (PyTorch-exact resizes), `transforms` (input
crops/normalisation), `init` (random variables at the input size),
`trainers` (the demo networks' training). Loading converted or trained
weights: `diffinf_jax.pretrained`.
"""
