"""One module per CLI stage: `configure(parser)` and `main(args) -> int`."""
