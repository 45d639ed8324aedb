"""Query images in, per model the top-k hits joined through the catalogue (path, label, cosine)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .ids import image_id
from .ingest import Stores
from .pipeline import Embedder
from .runner import OnnxEmbedder
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


def embed_queries(
    paths: list[Path], models: dict[str, OnnxEmbedder], batch_size: int = 32, progress: bool = False
) -> tuple[list[Path], dict[str, np.ndarray], list[tuple[str, str]]]:
    """Vectors of the query images that decode, per model, and the ones that did not with reasons."""
    emb = Embedder(models, batch_size=batch_size, progress=progress)
    ok: list[Path] = []
    vecs: dict[str, list[np.ndarray]] = {n: [] for n in models}
    for batch in emb.run([(Path(p), frozenset(models)) for p in paths]):
        ok += [it.path for it in batch.items]
        for name, (_, v) in batch.vectors.items():
            vecs[name].append(v)
    return (
        ok,
        {n: (np.concatenate(v) if v else np.zeros((0, models[n].dim), np.float32)) for n, v in vecs.items()},
        emb.failures,
    )


def search(
    paths: list[Path], models: dict[str, OnnxEmbedder], stores: Stores, top_k: int = 10, exclude_self: bool = False
) -> tuple[list[Hit], list[tuple[str, str]]]:
    """Top-k hits of every decodable query image with every model; the query's own id is left out on request."""
    ok, vecs, failed = embed_queries(paths, models, batch_size=32)
    return search_embedded(ok, vecs, stores, top_k, exclude_self), failed


def search_embedded(
    queries: list[Path], vecs: dict[str, np.ndarray], stores: Stores, top_k: int = 10, exclude_self: bool = False
) -> list[Hit]:
    """Top-k hits for already embedded queries (``vecs[model]`` rows follow ``queries``)."""
    exclude = [image_id(p) for p in queries] if exclude_self else None
    hits: list[Hit] = []
    for name in vecs:
        rows = stores.vectors.search(stores.collection(name), vecs[name], top_k, stores.index, exclude)
        records = stores.catalog.get_images({i for row in rows for i, _ in row})
        for q, row in zip(queries, rows, strict=True):
            for rank, (i, d) in enumerate(row, 1):
                rec = records.get(i)
                hits.append(
                    Hit(
                        str(q),
                        name,
                        rank,
                        i,
                        rec.path if rec else "",
                        rec.label if rec else "",
                        d,
                        float(to_cosine(d, stores.index.metric)),
                    )
                )
    return hits
