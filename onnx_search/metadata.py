"""The recipe a converted .onnx file carries in its ``metadata_props``, so the file describes itself."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .preprocess import Recipe

METADATA_KEY = "onnx_search.recipe"


class ModelFileError(RuntimeError):
    """A .onnx file that is missing or lacks onnx-search's recipe."""


def recipe_from_metadata(meta: dict, source: str | Path) -> Recipe:
    """Build the preprocessing Recipe from a metadata dict, naming the file when fields are missing."""
    try:
        return Recipe(
            int(meta["input_size"]),
            meta["preprocess"],
            meta.get("resize", "squash"),
            meta.get("interpolation", "bilinear"),
        )
    except KeyError as exc:
        raise ModelFileError(f"{source}: onnx-search metadata lacks {exc.args[0]!r}; re-convert it") from None


def parse_metadata(custom: dict[str, str], source: str | Path) -> dict:
    """Decode our JSON entry from an ONNX custom metadata map, or explain how to get one."""
    raw = custom.get(METADATA_KEY)
    if raw is None:
        raise ModelFileError(
            f"{source} has no onnx-search metadata ({METADATA_KEY!r}); convert it with "
            "`onnx-search convert`, or add the recipe with `onnx-search convert --annotate FILE --like MODEL`"
        )
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{source}: onnx-search metadata is not valid JSON ({exc})") from None


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
