"""A recipe's normalisation fused into one lookup pass per channel, bit-exact with ``prepare_batch``.

``prepare_batch`` converts a uint8 batch to float32 and applies the recipe's steps one array pass at a time (copy,
divide, subtract per channel, divide per channel, transpose). Every step is elementwise on one of 256 input values,
so the same steps applied once to ``0..255`` give a 256-entry table per channel whose entries are the very floats
those passes compute; one ``take`` per channel then writes the model's input, already in its layout.
"""

from __future__ import annotations

import numpy as np

from ..models.recipe import Recipe, normalize


class FusedNormalizer:
    """uint8 HWC RGB image -> the model's float32 input for one image (CHW or HWC), equal to ``prepare_batch``."""

    def __init__(self, recipe: Recipe) -> None:
        levels = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)  # (256, 3): v in every channel
        table = normalize(levels[None], recipe.preprocess, recipe.mean, recipe.std)[0]  # (256, 3) float32
        self.tables = [np.ascontiguousarray(table[:, c]) for c in range(3)]
        self.source = (2, 1, 0) if recipe.preprocess == "caffe" else (0, 1, 2)  # caffe feeds BGR
        self.chw = recipe.layout == "NCHW"
        self.size = recipe.input_size

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        h, w = pixels.shape[:2]
        if self.chw:
            out = np.empty((3, h, w), np.float32)
            for c in range(3):
                np.take(self.tables[c], pixels[..., self.source[c]], out=out[c])
            return out
        out = np.empty((h, w, 3), np.float32)
        for c in range(3):
            out[..., c] = self.tables[c].take(pixels[..., self.source[c]])
        return out
