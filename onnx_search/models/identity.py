"""A model's identity for its collections: what decides its vectors (graph, weights, opsets, recipe), no timestamps.

The whole file's sha256 changes whenever the same model is converted again (``converted_at``, versions and other
metadata live in the file), so a collection guard keyed on it refuses identical models. The identity hashes the
ONNX ``graph`` (nodes and weights), ``opset_import`` and ``functions`` fields as they are stored, read straight
from the protobuf wire format in a streaming pass (no copy of the weights in memory), plus the recipe.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import BinaryIO

from ..errors import ModelFileError
from .recipe import Recipe

# ModelProto field numbers that decide the vectors: graph, opset_import, functions
_HASHED = {7, 8, 25}
_CHUNK = 1 << 20


def _varint(f: BinaryIO) -> int | None:
    """One protobuf varint, or None at the end of the file."""
    shift = value = 0
    while True:
        b = f.read(1)
        if not b:
            if shift:
                raise ValueError("truncated varint")
            return None
        value |= (b[0] & 0x7F) << shift
        if not b[0] & 0x80:
            return value
        shift += 7


def model_identity(path: str | Path, recipe: Recipe) -> str:
    """Hex sha256 of the model's graph, opsets and functions as stored, and its recipe."""
    h = hashlib.sha256()
    h.update(json.dumps(asdict(recipe), sort_keys=True).encode() + b"\0")
    try:
        with open(path, "rb") as f:
            while (tag := _varint(f)) is not None:
                field, wire = tag >> 3, tag & 7
                if wire == 0:
                    _varint(f)
                elif wire == 1:
                    f.seek(8, 1)
                elif wire == 5:
                    f.seek(4, 1)
                elif wire == 2:
                    size = _varint(f)
                    if size is None:
                        raise ValueError("truncated length")
                    if field in _HASHED:
                        h.update(f"{field}:{size}:".encode())
                        while size:
                            block = f.read(min(size, _CHUNK))
                            if not block:
                                raise ValueError("truncated field")
                            h.update(block)
                            size -= len(block)
                    else:
                        f.seek(size, 1)
                else:
                    raise ValueError(f"unexpected wire type {wire}")
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{path}: cannot read it as an ONNX model ({exc})") from None
    return h.hexdigest()
