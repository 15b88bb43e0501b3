"""Benchmarks that print side-by-side ratios (run each as ``python -m bench.<name>``)."""
