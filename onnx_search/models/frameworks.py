"""Loading the source frameworks in an order that works: torchvision before TensorFlow.

With torch 2.14.1 and TensorFlow 2.21 in one process, importing torchvision *after* TensorFlow crashes the
interpreter (a segmentation fault while triton's native module loads, seen here); the other order works.
Every import of TensorFlow in onnx-search goes through ``tensorflow_safely``.
"""

from __future__ import annotations

import importlib.util
import os
import sys

from ..errors import OnnxSearchError

SINGLE_FRAMEWORK_ENV = "ONNX_SEARCH_SINGLE_FRAMEWORK"  # set in conversion children: one model, one framework


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def torch_before_tensorflow() -> None:
    """Import torchvision now, while TensorFlow is not loaded yet, when both are installed.

    Not in a process that runs one framework only (a conversion child, ``SINGLE_FRAMEWORK_ENV`` set): there torch
    would cost about 600 MB for nothing.
    """
    if os.environ.get(SINGLE_FRAMEWORK_ENV):
        return
    if "tensorflow" not in sys.modules and _installed("torchvision") and _installed("tensorflow"):
        import torchvision  # noqa: F401


def tensorflow_safely():
    """TensorFlow, with torchvision loaded first where it is installed."""
    torch_before_tensorflow()
    import tensorflow as tf

    return tf


def torchvision_safely():
    """torchvision, or a clear error instead of a crash when TensorFlow came first in this process."""
    if "torchvision" not in sys.modules and "tensorflow" in sys.modules:
        raise OnnxSearchError(
            "TensorFlow was imported before torchvision in this process, and loading torchvision now would crash "
            "it; convert torchvision models in a fresh process (onnx-search imports them in a safe order)"
        )
    import torchvision

    return torchvision
