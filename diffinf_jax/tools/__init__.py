"""Command-line tools beside the pipeline: bench, convert, diffae."""
