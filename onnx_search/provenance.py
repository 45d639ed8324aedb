"""Where a result came from: library versions and the machine, collected in one place for every manifest."""

from __future__ import annotations

import os
import platform
import resource
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


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB.

    Linux: ``VmHWM`` of this address space. ``ru_maxrss`` would survive ``exec`` and report the parent's peak for a
    child started from a big process (seen here: 9.1 GB for a small ingest started by the scale bench).
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
