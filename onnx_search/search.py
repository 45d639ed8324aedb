"""Query images in, per model the top-k hits joined through the catalogue (path, label, cosine)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .embed.pipeline import Pipeline
from .embed.sinks import embed_paths
from .ids import image_id
from .models.session import ModelSession
from .store.stores import Stores
from .vectors import to_cosine


@dataclass
class Hit:
    query: str
    model: str
    rank: int
    id: int
    path: str
    label: str
    distance: float  # as Milvus returns it for the collection's metric
    cosine: float  # comparable across models and metrics

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class QueryVectors:
    """Vectors of the queries that could be had, per model (rows follow ``paths``), and those that could not."""

    paths: list[Path]
    vectors: dict[str, np.ndarray]
    failed: list[tuple[str, str]] = field(default_factory=list)
    fetched: int = 0  # queries whose stored vectors were reused instead of embedding them again


def _unchanged_in_store(paths: list[Path], models: list[str], stores: Stores) -> set[Path]:
    """Queries that are catalogued images, unchanged on disk, whose vectors every model already stored."""
    ids = {p: image_id(p) for p in paths}
    records = stores.catalog.get_images(ids.values())
    done = {m: stores.catalog.done(m) for m in models}
    out = set()
    for p, i in ids.items():
        rec = records.get(i)
        try:
            st = os.stat(p)
        except OSError:
            continue
        if (
            rec
            and rec.size == st.st_size
            and rec.mtime_ns == st.st_mtime_ns
            and all(done[m].get(i) == rec.sha for m in models)
        ):
            out.add(p)
    return out


def query_vectors(
    paths: list[Path],
    models: dict[str, ModelSession],
    stores: Stores | None = None,
    batch_size: int | dict[str, int] = 32,
    workers: int | None = None,
    progress: bool = False,
) -> QueryVectors:
    """Vectors of the query images: fetched from the stores when already ingested, else embedded once."""
    paths = [Path(p) for p in paths]
    stored = _unchanged_in_store(paths, list(models), stores) if stores else set()
    to_embed = [p for p in paths if p not in stored]
    pipeline = Pipeline(models, batch_size=batch_size, workers=workers, progress=progress)
    embedded = embed_paths(pipeline, to_embed)
    fetched_paths = [p for p in paths if p in stored]
    fetched = {m: stores.fetch(m, [image_id(p) for p in fetched_paths]) for m in models} if fetched_paths else {}
    row_of = {p: ("fetched", i) for i, p in enumerate(fetched_paths)}
    row_of |= {p: ("embedded", i) for i, p in enumerate(embedded.paths)}
    ok = [p for p in paths if p in row_of]
    vectors = {}
    for m, session in models.items():
        source = {"fetched": fetched.get(m), "embedded": embedded.vectors(m)}
        rows = [source[row_of[p][0]][row_of[p][1]] for p in ok]
        vectors[m] = np.asarray(rows, np.float32).reshape(len(ok), session.dim)
    return QueryVectors(ok, vectors, pipeline.failures, len(fetched_paths))


def search(
    paths: list[Path],
    models: dict[str, ModelSession],
    stores: Stores,
    top_k: int = 10,
    exclude_self: bool = False,
    batch_size: int | dict[str, int] = 32,
    workers: int | None = None,
) -> tuple[list[Hit], list[tuple[str, str]]]:
    """Top-k hits of every decodable query image with every model; the query's own id is left out on request."""
    q = query_vectors(paths, models, stores, batch_size, workers)
    return search_embedded(q.paths, q.vectors, stores, top_k, exclude_self), q.failed


def search_embedded(
    queries: list[Path], vecs: dict[str, np.ndarray], stores: Stores, top_k: int = 10, exclude_self: bool = False
) -> list[Hit]:
    """Top-k hits for already embedded queries (``vecs[model]`` rows follow ``queries``)."""
    exclude = [image_id(p) for p in queries] if exclude_self else None
    hits: list[Hit] = []
    for name in vecs:
        rows = stores.search(name, vecs[name], top_k, exclude)
        records = stores.catalog.get_images({i for row in rows for i, _ in row})
        for q, row in zip(queries, rows, strict=True):
            for rank, (i, d) in enumerate(row, 1):
                rec = records.get(i)
                path, label = (rec.path, rec.label) if rec else ("", "")
                hits.append(Hit(str(q), name, rank, i, path, label, d, float(to_cosine(d, stores.index.metric))))
    return hits
