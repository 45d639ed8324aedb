"""onnx-search: compare image-embedding models in real image search."""

__version__ = "0.1.0"
