"""Milvus + Redis behind one object: ``open_stores(settings)`` is the only place the stores are opened."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .catalog import Catalog
from .index import IndexParams, IndexSpec
from .local_redis import LocalRedis, connect_redis
from .milvus import VectorStore, connect_milvus
from .naming import collection_name, collection_prefix, default_namespace
from .net import mask_url


@dataclass(frozen=True)
class StoreSettings:
    """Where the stores are and how collections are indexed; empty addresses mean the embedded defaults."""

    data_dir: Path = Path("data")
    milvus_uri: str | None = None  # empty: Milvus Lite under data_dir
    milvus_token: str | None = None
    milvus_user: str | None = None
    milvus_password: str | None = None
    redis_url: str | None = None  # empty: the project's own redis-server under data_dir
    namespace: str | None = None  # default: onnxsearch:<user>:default
    metric: str = "COSINE"
    index: IndexParams = field(default_factory=IndexParams)
    keep_redis: bool | None = None  # keep the embedded redis-server running at the end (None: $ONNX_SEARCH_KEEP_REDIS)

    def describe(self) -> dict:
        """What a manifest records (passwords masked)."""
        return {
            "data_dir": str(Path(self.data_dir).resolve()),
            "milvus": mask_url(self.milvus_uri) if self.milvus_uri else "milvus-lite",
            "redis": mask_url(self.redis_url) if self.redis_url else "local redis-server",
            "metric": self.metric,
        }


@dataclass
class Stores:
    """The catalogue (Redis) and the per-model collections (Milvus) of one namespace."""

    catalog: Catalog
    vectors: VectorStore
    prefix: str
    index: IndexSpec = field(default_factory=IndexSpec)
    local_redis: LocalRedis | None = None  # the embedded server, when the catalogue lives there

    def collection(self, model: str) -> str:
        return collection_name(self.prefix, model)

    def has_model(self, model: str) -> bool:
        return self.vectors.exists(self.collection(model))

    def count(self, model: str) -> int:
        return self.vectors.count(self.collection(model))

    def fetch(self, model: str, ids: list[int]) -> np.ndarray:
        """Stored vectors of ``ids`` for one model, in the order given."""
        return self.vectors.fetch(self.collection(model), ids)

    def fetch_present(self, model: str, ids: list[int]) -> dict[int, np.ndarray]:
        """Stored vectors of those ``ids`` that one model's collection holds."""
        return self.vectors.fetch_present(self.collection(model), ids)

    def search(
        self, model: str, queries: np.ndarray, top_k: int, exclude: list[int | None] | None = None
    ) -> list[list[tuple[int, float]]]:
        """Top-k (id, Milvus distance) per query vector in one model's collection."""
        return self.vectors.search(self.collection(model), queries, top_k, self.index, exclude)

    def index_info(self, model: str) -> dict:
        return self.vectors.index_info(self.collection(model))

    def close(self) -> None:
        """Close Milvus; stop the embedded Redis when this process started it (see ``LocalRedis.release``)."""
        try:
            self.vectors.close()
        finally:
            if self.local_redis is not None:
                self.local_redis.release()


def open_stores(settings: StoreSettings) -> Stores:
    """Connect to both stores (Redis first: a store that is down fails here, in seconds, before any work)."""
    ns = settings.namespace or default_namespace()
    local = None if settings.redis_url else LocalRedis(settings.data_dir, keep=settings.keep_redis)
    redis_client = local.start() if local else connect_redis(settings.redis_url, settings.data_dir)
    try:
        milvus = connect_milvus(
            settings.milvus_uri,
            settings.data_dir,
            token=settings.milvus_token,
            user=settings.milvus_user,
            password=settings.milvus_password,
        )
    except BaseException:
        if local is not None:
            local.release()
        raise
    return Stores(
        Catalog(redis_client, ns),
        VectorStore(milvus),
        collection_prefix(ns),
        IndexSpec.of(settings.metric, settings.index),
        local,
    )


def namespaces(client) -> list[str]:
    """The namespaces that hold a catalogue in this Redis (those with catalogued images or ingested models)."""
    found = set()
    for suffix in (":models", ":ids"):
        for key in client.scan_iter(match="*" + suffix, count=1000):
            k = key.decode("utf-8", "surrogateescape") if isinstance(key, bytes) else str(key)
            found.add(k[: -len(suffix)])
    return sorted(found)
