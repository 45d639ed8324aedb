"""Insert rates (Milvus Lite, Redis) beside the embedding rate, and recall/latency per index (store.json)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from ..embed.pipeline import Pipeline
from ..embed.sinks import embed_paths
from ..experiment.sweep import evaluate_variants, frontier
from ..ids import image_id
from ..models.session import ModelSession, SessionConfig
from ..provenance import library_versions, machine
from ..store.catalog import Catalog, ImageRecord
from ..store.index import IndexSpec
from ..store.local_redis import LocalRedis
from ..store.milvus import VectorStore, connect_milvus
from ..synth import generate_labelled_set
from .embed import rate

INDEX_VARIANTS = (
    [IndexSpec(type="FLAT")]
    + [IndexSpec(type="IVF_FLAT", search={"nprobe": p}) for p in (1, 4, 16, 64)]
    + [IndexSpec(type="HNSW", params={"M": 16, "efConstruction": 200}, search={"ef": e}) for e in (10, 20, 40, 80, 160)]
)


def _insert_rates(store: VectorStore, catalog: Catalog, model: str, ids, base: np.ndarray, records, reps: int = 3):
    """Rows/s of a Milvus upsert + flush and of the Redis catalogue writes, interleaved over ``reps`` passes."""
    milvus_rates, redis_rates = [], []
    marks = {r.id: r.sha for r in records}
    for rep in range(reps):
        coll = f"bench_insert_{rep}"
        store.drop(coll)
        store.ensure(coll, base.shape[1], IndexSpec(), len(ids))
        milvus_rates.append(rate(lambda c=coll: (store.upsert(c, ids, base), store.flush(c)), len(ids)))
        redis_rates.append(rate(lambda: (catalog.put_images(records), catalog.mark_done(model, marks)), len(ids)))
        store.drop(coll)
    return milvus_rates, redis_rates


def bench_store(
    models_dir: Path,
    name: str = "resnet50",
    n_images: int = 1500,
    n_queries: int = 50,
    top_k: int = 10,
    work: Path | None = None,
) -> dict:
    """Insert throughput (Milvus, Redis) vs embedding throughput; recall@k and latency per index setting."""
    work = work or Path(tempfile.mkdtemp())
    files = generate_labelled_set(work / "images", per_class=-(-(n_images + n_queries) // 6), size=96, seed=1)
    model = ModelSession(models_dir / f"{name}.onnx", SessionConfig(["cpu"]))
    t = time.perf_counter()
    got = embed_paths(Pipeline({name: model}, batch_size=32, progress=False), files)
    paths, allv = got.paths, got.vectors(name)
    embed_rate = len(paths) / (time.perf_counter() - t)
    qidx = np.random.default_rng(0).choice(len(paths), size=n_queries, replace=False)
    mask = np.ones(len(paths), bool)
    mask[qidx] = False
    base, queries = allv[mask], allv[qidx]
    kept = [p for p, keep in zip(paths, mask, strict=True) if keep]
    ids = [image_id(p) for p in kept]
    records = [ImageRecord(i, str(p), "0" * 32, 1, 1, p.parent.name, str(work)) for i, p in zip(ids, kept, strict=True)]
    server = LocalRedis(work / "data")
    try:
        store = VectorStore(connect_milvus(None, work / "data"))
        milvus_rates, redis_rates = _insert_rates(store, Catalog(server.start(), "bench"), name, ids, base, records)
        rows = evaluate_variants(store, ids, base, queries, INDEX_VARIANTS, top_k, "bench_index")
    finally:
        server.stop()
    m_rate, r_rate = float(np.median(milvus_rates)), float(np.median(redis_rates))
    print(
        f"store: Milvus {m_rate:.0f} rows/s ({m_rate / embed_rate:.1f}x embedding), Redis {r_rate:.0f} rows/s "
        f"({r_rate / embed_rate:.1f}x); index recall/p50: "
        + ", ".join(f"{r['index']}{r['search']} {r['recall_at_k']:.3f}/{r['p50_ms']:.1f}ms" for r in rows),
        flush=True,
    )
    return {
        "machine": machine(),
        "versions": library_versions(),
        "model": name,
        "rows": len(ids),
        "dim": int(allv.shape[1]),
        "queries": n_queries,
        "top_k": top_k,
        "vectors": f"{name} embeddings of generated images (weights: {model.meta.get('weights')})",
        "embed_img_per_s": round(embed_rate, 2),
        "milvus_lite_upsert_rows_per_s": round(m_rate, 1),
        "redis_catalogue_rows_per_s": round(r_rate, 1),
        "milvus_insert_over_embed": round(m_rate / embed_rate, 2),
        "redis_insert_over_embed": round(r_rate / embed_rate, 2),
        "raw": {
            "milvus_rows_per_s": [round(v, 1) for v in milvus_rates],
            "redis_rows_per_s": [round(v, 1) for v in redis_rates],
        },
        "index": rows,
        "frontier": [{k: r[k] for k in ("index", "search", "recall_at_k", "p50_ms")} for r in frontier(rows)],
    }
