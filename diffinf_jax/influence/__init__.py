"""Influence engine: exact per-example gradient norms, TracIn, h_omega.

Modules: `per_example` (norm engine: exact | vmap | last_layer), `taps` and
`layer_rules` (its Flax interception and per-layer math), `tracin`
(checkpoint-outer self-influence with resume), `detection` (flagged-set
metrics and plots), `predictor` (the influence predictor h_omega).
"""
