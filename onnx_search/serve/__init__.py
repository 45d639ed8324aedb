"""The interactive explorer: a local web app over the live stores and run folders (``onnx-search serve``)."""
