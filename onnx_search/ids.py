"""The one image id every store shares (a 63-bit hash of the resolved path), and the content hash beside it."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def image_id(path: str | Path) -> int:
    """63-bit id of an image path (BLAKE2b of the UTF-8 path; non-zero, fits Milvus INT64)."""
    raw = os.fsencode(str(path))
    value = int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "big") & ((1 << 63) - 1)
    return value or 1


def in_tie_order(items: list, doc_id=lambda x: x) -> list:
    """``items`` that tie on score, in trec_eval's order: document id descending, compared as text (trec_eval sorts
    a run by score, then ``strcmp`` of the docnos, larger first: "9" before "10"). The store's hits and every
    metric order ties this one way, so a hit's rank is the rank its metrics count."""
    return sorted(items, key=lambda x: str(doc_id(x)), reverse=True)


def content_hash(data: bytes) -> str:
    """Short content hash of a file's bytes (BLAKE2b-128, hex): notices a changed file under the same id."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file, streamed (model files: what a collection was built from)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
