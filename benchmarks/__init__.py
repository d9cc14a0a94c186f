"""Rerunnable measurements behind docs/benchmarks.md; run each as ``python -m benchmarks.NAME``."""
