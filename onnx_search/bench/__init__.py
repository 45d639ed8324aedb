"""Benchmarks behind ``make bench`` (``python -m onnx_search.bench``)."""
