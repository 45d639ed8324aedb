"""The vectors of augmented copies on disk, so a rerun with nothing changed makes and embeds no copy again.

One file per (copy, model): ``<folder>/<model key>/<copy key>.npz`` holding the vector and the copy's parameters.
The copy key hashes everything that decides the copy's pixels (the original's content hash, the transform, its
generator's seed/index/position, the side it is made at, the copy format and Pillow's version); the model key
everything that decides a vector from those pixels (the model's identity: graph, weights and recipe, the
onnxruntime version and the providers that ran). Nothing else enters either key. Files are written atomically
(a temporary file in the same folder, then ``os.replace``): a reader sees a whole entry or none.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import PIL

COPIES_FORMAT = 1  # bump when a transform or the copy source changes what a copy is


def _digest(obj: dict, size: int) -> str:
    return hashlib.blake2b(json.dumps(obj, sort_keys=True).encode(), digest_size=size).hexdigest()


def copy_key(original_hash: str, transform: str, seed: int, index: int, position: int, side: int | None) -> str:
    """What decides a copy's pixels, hashed."""
    return _digest({"format": COPIES_FORMAT, "original": original_hash, "transform": transform,
                    "rng": [seed, index, position], "side": side, "pillow": PIL.__version__}, 16)  # fmt: skip


def model_key(identity: str, onnxruntime_version: str, providers: list[str]) -> str:
    """What decides a vector from a copy's pixels, hashed."""
    return _digest({"identity": identity, "onnxruntime": onnxruntime_version, "providers": list(providers)}, 8)


class CopyCache:
    """Vectors and parameters of copies under ``folder`` (None: nothing is read or written)."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self.hits = 0  # (copy, model) vectors read back
        self.writes = 0  # (copy, model) vectors written

    def _path(self, model: str, key: str) -> Path:
        return self.folder / model / f"{key}.npz"

    def get(self, model: str, key: str) -> tuple[np.ndarray, dict] | None:
        """The vector and parameters stored for (model key, copy key), or None (absent or unreadable)."""
        if self.folder is None:
            return None
        try:
            with np.load(self._path(model, key), allow_pickle=False) as z:
                out = z["vector"].astype(np.float32), json.loads(str(z["params"]))
        except (OSError, ValueError, KeyError):
            return None
        self.hits += 1
        return out

    def put(self, model: str, key: str, vector: np.ndarray, params: dict) -> None:
        """Store one entry atomically."""
        if self.folder is None:
            return
        path = self._path(model, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{key}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, vector=np.asarray(vector, np.float32), params=np.array(json.dumps(params)))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.writes += 1
