"""Benchmarks (not tests: pytest does not collect this folder). See docs/BENCHMARKS.md."""
