"""Where embedded batches go. One loop (``drain``) feeds any sink: memory here, the stores in ``ingest``."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

import numpy as np

from .pipeline import Batch, Pipeline


class Sink(Protocol):
    """Receives every embedded batch in order; ``close`` runs once after the last one."""

    def write(self, batch: Batch) -> None: ...

    def close(self) -> None: ...


class MemorySink:
    """Keeps paths, content hashes and each model's vectors in input order."""

    def __init__(self, dims: dict[str, int]) -> None:
        self.dims = dims
        self.paths: list[Path] = []
        self.shas: list[str] = []
        self._chunks: dict[str, list[np.ndarray]] = {name: [] for name in dims}

    def write(self, batch: Batch) -> None:
        self.paths += [it.path for it in batch.items]
        self.shas += [it.sha for it in batch.items]
        for name, (_, vecs) in batch.vectors.items():
            self._chunks[name].append(vecs)

    def close(self) -> None:
        pass

    def vectors(self, name: str) -> np.ndarray:
        """One model's vectors, a row per path (every model embedded every path)."""
        chunks = self._chunks[name]
        return np.concatenate(chunks) if chunks else np.zeros((0, self.dims[name]), np.float32)

    def all_vectors(self) -> dict[str, np.ndarray]:
        return {name: self.vectors(name) for name in self.dims}


def drain(pipeline: Pipeline, paths: Iterable[Path], sink: Sink) -> Sink:
    """Embed ``paths`` with every model of ``pipeline`` into ``sink``; failures stay in ``pipeline.failures``."""
    everyone = frozenset(pipeline.models)
    try:
        for batch in pipeline.run([(Path(p), everyone) for p in paths]):
            sink.write(batch)
    finally:
        sink.close()
    return sink


def embed_paths(pipeline: Pipeline, paths: Iterable[Path]) -> MemorySink:
    """Vectors of every decodable path with every model, in memory."""
    sink = MemorySink({name: m.dim for name, m in pipeline.models.items()})
    drain(pipeline, paths, sink)
    return sink
