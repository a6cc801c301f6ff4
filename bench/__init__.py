"""Benchmarks (see README.md); ``_swarm`` is shared with the tests."""
