"""Benchmarks: each workload measures Magnet against a bare-Flask baseline in the same run.

Machines differ and are noisy, so the result of a workload is the ratio to its baseline;
absolute figures are kept only as notes. See docs/benchmarks.md.
"""
