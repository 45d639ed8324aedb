"""Execution providers: short names, the order ``auto`` tries, and whether a GPU provider can load here."""

from __future__ import annotations

import os

from ..errors import ProviderError

PROVIDER_NAMES = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
AUTO_ORDER = ("tensorrt", "cuda", "cpu")


def expand_providers(requested: list[str], available: list[str]) -> list[str]:
    """Map short names (auto, tensorrt, cuda, cpu) or full ORT names to the ORT provider list.

    ``auto`` expands to TensorRT, CUDA, CPU, keeping those this onnxruntime build offers.
    CPU is always appended as the last resort unless strict mode checks it away later.
    """
    out: list[str] = []
    for name in requested:
        key = name.lower()
        if key == "auto":
            names = [PROVIDER_NAMES[k] for k in AUTO_ORDER if PROVIDER_NAMES[k] in available]
        elif key in PROVIDER_NAMES:
            names = [PROVIDER_NAMES[key]]
        elif name in available or name.endswith("ExecutionProvider"):
            names = [name]
        else:
            raise ProviderError(
                f"unknown execution provider {name!r}; use auto, tensorrt, cuda, cpu or one of {available}"
            )
        out += [n for n in names if n not in out]
    return out


_PROVIDER_LIBS = {
    "CUDAExecutionProvider": "libonnxruntime_providers_cuda.so",
    "TensorrtExecutionProvider": "libonnxruntime_providers_tensorrt.so",
}


def provider_loadable(provider: str) -> tuple[bool, str]:
    """Whether a GPU provider's shared library and its CUDA/TensorRT dependencies load on this machine.

    ``get_available_providers()`` lists what onnxruntime was built with, not what can run here; ``auto``
    uses this check to skip providers that would only fail and fall back.
    """
    import ctypes
    import sys

    import onnxruntime as ort

    lib = _PROVIDER_LIBS.get(provider)
    if lib is None or sys.platform != "linux":
        return True, ""
    capi = os.path.join(os.path.dirname(ort.__file__), "capi")
    try:
        if hasattr(ort, "preload_dlls"):  # CUDA/cuDNN from nvidia-* wheels, when installed
            import contextlib
            import io

            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                ort.preload_dlls()
        ctypes.CDLL(os.path.join(capi, "libonnxruntime_providers_shared.so"), mode=ctypes.RTLD_GLOBAL)
        ctypes.CDLL(os.path.join(capi, lib))
        return True, ""
    except OSError as exc:
        return False, str(exc)


def with_provider_options(provider: str, trt_cache_dir: str):
    """A provider entry for InferenceSession; TensorRT gets its engine and timing caches (builds take minutes)."""
    if provider == "TensorrtExecutionProvider":
        return (
            provider,
            {
                "trt_engine_cache_enable": True,
                "trt_engine_cache_path": trt_cache_dir,
                "trt_timing_cache_enable": True,
                "trt_timing_cache_path": trt_cache_dir,
            },
        )
    return provider
