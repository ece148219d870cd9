"""Benchmarks and studies of Nexus: run each as ``python -m benchmarks.<name>`` from the root."""
