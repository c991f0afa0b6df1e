"""Benchmarks behind `diffinf bench <what>`; each module has configure/main."""
