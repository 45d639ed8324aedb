"""The parity gate: a converted graph must give the source framework's vectors, or its file is not kept."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import ParityError
from ..vectors import l2_normalize
from .zoo import ModelSpec

# L2-normalised ONNX and source vectors may differ by at most this much in any component.
# Seen on CPU: 1e-7..4e-7; the gate leaves room for other CPUs and GPU kernels, and still
# catches a wrong graph, which differs by 1e-2 or more.
PARITY_TOLERANCE = 1e-4
PARITY_BATCH = 4


def parity_images(spec: ModelSpec, n: int = PARITY_BATCH, seed: int = 1234) -> np.ndarray:
    """A fixed uint8 NHWC batch: smooth gradients plus seeded noise, so every layer sees varied input."""
    rng = np.random.default_rng(seed)
    s = spec.input_size
    yy, xx = np.mgrid[0:s, 0:s] / max(s - 1, 1)
    out = np.empty((n, s, s, 3), dtype=np.uint8)
    for i in range(n):
        base = np.stack([xx * (i + 1) % 1, yy, (xx + yy) / 2], axis=-1) * 255
        noise = rng.normal(0, 30, base.shape)
        out[i] = np.clip(base + noise, 0, 255).astype(np.uint8)
    return out


def check_parity(
    forward: Callable[[np.ndarray], np.ndarray],
    onnx_path: Path,
    name: str,
    x: np.ndarray,
    tolerance: float = PARITY_TOLERANCE,
    source: str = "Keras",
) -> dict:
    """Run ``x`` through ``forward`` (the source model) and the ONNX file; raise ParityError beyond ``tolerance``."""
    import onnxruntime as ort

    ref = l2_normalize(forward(x))
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = l2_normalize(sess.run(None, {sess.get_inputs()[0].name: x})[0])
    if ref.shape != got.shape:
        raise ParityError(f"{name}: ONNX output shape {got.shape} != {source} {ref.shape}; the .onnx file was not kept")
    diff = float(np.abs(ref - got).max())
    cos_min = float((ref * got).sum(axis=1).min())
    figures = {"max_abs_diff": diff, "min_cosine": cos_min, "tolerance": tolerance, "batch": len(x), "against": source}
    if not diff <= tolerance:
        raise ParityError(
            f"{name}: ONNX and {source} disagree, max abs diff {diff:.3g} > tolerance "
            f"{tolerance:g} (min cosine {cos_min:.6f}); the .onnx file was not kept"
        )
    return figures
