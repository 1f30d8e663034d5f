"""Benchmarks: one module per area (``run_bench(quick)``), each writing its section of docs/benchmarks.md.

Benchmarks are entry points and sit in the top layer with the CLI, so they may use any area.
"""
