"""Tools for testing and benchmarking distill against real HTTP (not used by the pipeline itself)."""
