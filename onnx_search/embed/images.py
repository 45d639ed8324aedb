"""Embedding images that exist only in memory (perturbed copies): resized per recipe, batched, every model."""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..models.recipe import prepare_batch
from ..models.session import ModelSession
from .decode import resize


def embed_images(
    models: dict[str, ModelSession], images: list[Image.Image], batch_size: int = 32
) -> dict[str, np.ndarray]:
    """Unit vectors of RGB ``images`` for every model, rows in input order."""
    out = {}
    for name, m in models.items():
        chunks = []
        for s in range(0, len(images), batch_size):
            pixels = np.stack([resize(img, *m.recipe.geometry) for img in images[s : s + batch_size]])
            chunks.append(m.embed(prepare_batch(pixels, m.recipe)))
        out[name] = np.concatenate(chunks) if chunks else np.zeros((0, m.dim), np.float32)
    return out
