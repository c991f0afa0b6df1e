"""Frozen networks of the correction objective: ArcFace, BiSeNet, LPIPS.

Modules: `arcface` (IResNet), `face_parsing` (BiSeNet), `lpips` (VGG16 LPIPS
with local weights), `resize` (PyTorch-exact resizes), `transforms` (input
crops/normalisation), `loading` (build from converted/trained weights).
"""
