"""The one image id every store shares: a deterministic 63-bit hash of the resolved path."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def image_id(path: str | Path) -> int:
    """63-bit id of an image path (BLAKE2b of the UTF-8 path; non-zero, fits Milvus INT64)."""
    raw = os.fsencode(str(path))
    value = int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "big") & ((1 << 63) - 1)
    return value or 1
