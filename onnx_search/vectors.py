"""Unit vectors and the one conversion from a Milvus distance to cosine similarity."""

from __future__ import annotations

import numpy as np


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Row-wise unit length as float32 (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def to_cosine(distance, metric: str):
    """Milvus distance -> cosine similarity for unit vectors (Milvus' L2 is squared: ``2 - 2·cos``)."""
    if str(metric) == "L2":
        return 1.0 - np.asarray(distance, dtype=np.float64) / 2.0
    return np.asarray(distance, dtype=np.float64)
