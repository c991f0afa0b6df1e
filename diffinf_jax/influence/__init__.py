"""Influence engine: exact per-example gradient norms, TracIn, h_omega.

Modules: `api` (the entry point for any Flax model and its checkpoints; see
docs/influence_api.md), `per_example` (norm engine: exact | vmap |
last_layer), `taps` and `layer_rules` (its Flax interception and per-layer
math), `tracin` (checkpoint-outer self-influence with resume), `predictor`
(the influence predictor h_omega).
"""
