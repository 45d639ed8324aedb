"""Where a result came from: library versions and the machine, collected in one place for every manifest."""

from __future__ import annotations

import os
import platform
from importlib import metadata

from . import __version__

# distribution names, first installed wins (onnxruntime-gpu and onnxruntime ship the same module)
_PACKAGES = {
    "onnxruntime": ("onnxruntime-gpu", "onnxruntime"),
    "tf2onnx": ("tf2onnx",),
    "tensorflow": ("tensorflow-cpu", "tensorflow"),
    "keras": ("keras",),
    "onnx": ("onnx",),
    "torch": ("torch",),
    "torchvision": ("torchvision",),
    "pymilvus": ("pymilvus",),
    "milvus_lite": ("milvus-lite",),
    "redis_py": ("redis",),
    "numpy": ("numpy",),
    "pillow": ("Pillow", "pillow"),
}


def package_version(*names: str) -> str | None:
    """The installed version of the first of ``names`` that is installed, else None."""
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def library_versions() -> dict[str, str | None]:
    """Versions of onnx-search and every library that shapes a result (None: not installed)."""
    return {"onnx_search": __version__, "python": platform.python_version()} | {
        key: package_version(*names) for key, names in _PACKAGES.items()
    }


def machine() -> dict:
    """The machine a figure was measured on."""
    return {"platform": platform.platform(), "cpus": os.cpu_count(), "processor": platform.processor()}
