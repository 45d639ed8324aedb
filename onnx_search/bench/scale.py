"""How each cost grows with the collection (bench/scale.json + scale.png).

Per size: Milvus Lite insert rate (upsert + flush), index build, search p50/p99 and recall@10 against exact
search for FLAT, IVF_FLAT and HNSW; Redis catalogue memory per image; and the peak RSS of a whole ingest at two
folder sizes (a child process each, so one's memory cannot hide in the other's). Vectors are real embeddings of
generated images for the smallest size and seeded random unit vectors beyond (embedding 100k images would take
an hour here); what grows with n is the store, not the model.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ..experiment.sweep import evaluate_variants
from ..store.catalog import Catalog, ImageRecord
from ..store.index import IndexSpec
from ..store.local_redis import LocalRedis
from ..store.milvus import VectorStore, connect_milvus
from ..synth import generate_labelled_set

INDEXES = [
    IndexSpec(type="FLAT"),
    IndexSpec(type="IVF_FLAT", search={"nprobe": 16}),
    IndexSpec(type="HNSW", params={"M": 16, "efConstruction": 200}, search={"ef": 64}),
]


def unit_vectors(n: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def store_costs(store: VectorStore, base: np.ndarray, queries: np.ndarray, top_k: int = 10) -> list[dict]:
    """Insert rate and per-index build/search/recall on ``base`` (ids 1..n)."""
    ids = list(range(1, len(base) + 1))
    rows = evaluate_variants(store, ids, base, queries, INDEXES, top_k, f"scale_{len(base)}", repeats=2)
    for r in rows:
        r["insert_rows_per_s"] = round(len(base) / r["build_s"], 1)  # upsert + flush (the index is built on flush)
    return rows


def catalogue_bytes_per_image(client, n: int) -> float:
    """Redis memory added by ``n`` catalogue records (pipelined writes), per record."""
    ns = f"scale:{n}:{time.time_ns()}"
    before = client.info("memory")["used_memory"]
    Catalog(client, ns).put_images(
        ImageRecord(
            i,
            f"/photos/album_{i % 97}/IMG_{i:07d}.jpg",
            f"{i:032x}",
            2_000_000 + i,
            1_700_000_000_000_000_000 + i,
            f"album_{i % 97}",
            "/photos",
        )  # fmt: skip
        for i in range(1, n + 1)
    )
    used = client.info("memory")["used_memory"] - before
    for key in client.scan_iter(match=f"{ns}:*", count=5000):
        client.delete(key)
    return used / n


def ingest_peak_rss_mb(folder: Path, models_dir: Path, data: Path, model: str) -> float:
    """Peak RSS of ``onnx-search ingest`` of ``folder`` in a fresh child process that reports its own, in MB."""
    code = ("import sys\nfrom onnx_search.cli import main\nfrom onnx_search.experiment.cost import peak_rss_mb\n"
            "rc = main(sys.argv[1:])\nprint('PEAK_MB', peak_rss_mb())\nsys.exit(rc)")  # fmt: skip
    args = ["ingest", str(folder), "--model", model, "--models-dir", str(models_dir), "--data-dir", str(data),
            "--providers", "cpu", "--quiet"]  # fmt: skip
    r = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True, timeout=3600)
    LocalRedis(data).stop()
    return float(r.stdout.split("PEAK_MB")[1].split()[0])


def bench_scale(models_dir: Path, work: Path | None = None, sizes=(1_000, 10_000, 100_000), rss_sizes=(1_000, 10_000),
                real_model: str = "resnet50") -> dict:  # fmt: skip
    """The scale figures; ``rss_sizes`` are folder sizes for the ingest-RSS pair, ingested with a tiny pixel-mean
    model so that what grows is the pipeline and the stores, not the time a network takes."""
    from ..embed.pipeline import Pipeline
    from ..embed.sinks import embed_paths
    from ..models.session import ModelSession, SessionConfig
    from ..models.tiny import write_pixel_mean_model

    work = work or Path(tempfile.mkdtemp())
    session = ModelSession(models_dir / f"{real_model}.onnx", SessionConfig(["cpu"]))
    files = generate_labelled_set(work / "real", per_class=-(-sizes[0] // 6), size=96, seed=2)[: sizes[0]]
    real = embed_paths(Pipeline({real_model: session}, batch_size=32, progress=False), files).vectors(real_model)
    nq = min(50, len(real))  # query count: 50, or every real vector of a smaller first size
    queries = unit_vectors(nq, real.shape[1], 99)
    out: dict = {"sizes": list(sizes), "dim": int(real.shape[1]), "stores": {}, "catalogue_bytes_per_image": {}}
    server = LocalRedis(work / "redis")
    client = server.start()
    try:
        for n in sizes:
            base = real if n == len(real) else unit_vectors(n, real.shape[1], n)
            q = real[:nq] + 0.05 * queries if n == len(real) else unit_vectors(nq, real.shape[1], n + 1)
            q = q / np.linalg.norm(q, axis=1, keepdims=True)
            store = VectorStore(connect_milvus(None, work / f"milvus_{n}"))
            out["stores"][str(n)] = {
                "vectors": "real" if n == len(real) else "random",
                "indexes": store_costs(store, base, q),
            }
            out["catalogue_bytes_per_image"][str(n)] = round(catalogue_bytes_per_image(client, n), 1)
            figures = [
                f"{r['index']} recall {r['recall_at_k']:.3f} p50 {r['p50_ms']:.1f}ms build {r['build_s']:.1f}s"
                for r in out["stores"][str(n)]["indexes"]
            ]
            print(f"scale {n}: " + ", ".join(figures), flush=True)
    finally:
        server.stop()
    rss, tiny = {}, write_pixel_mean_model(work / "pixel_mean.onnx", like=real_model)
    for n in rss_sizes:
        folder = work / f"folder_{n}"
        generate_labelled_set(folder, per_class=-(-n // 6), size=64, seed=n)
        rss[str(n)] = round(ingest_peak_rss_mb(folder, models_dir, work / f"ingest_{n}", str(tiny)), 1)
    out["ingest_peak_rss_mb"] = rss
    small, large = (rss[str(n)] for n in rss_sizes)
    out["ingest_rss_growth"] = round(large / small, 3)
    return out


def scale_plot(scale: dict, out: Path) -> Path:
    """Search p50 (log) and recall@10 against collection size, one line per index."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [int(n) for n in scale["stores"]]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    for idx in ("FLAT", "IVF_FLAT", "HNSW"):
        rows = [next(r for r in scale["stores"][str(n)]["indexes"] if r["index"] == idx) for n in sizes]
        a.plot(sizes, [r["p50_ms"] for r in rows], marker="o", label=idx)
        b.plot(sizes, [r["recall_at_k"] for r in rows], marker="o", label=idx)
    for ax, label in ((a, "search p50 ms (one query)"), (b, "recall@10 vs exact")):
        ax.set_xscale("log")
        ax.set_xlabel("vectors in the collection")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    a.set_yscale("log")
    kinds = ", ".join(f"{int(n):,}: {d['vectors']}" for n, d in scale["stores"].items())
    fig.suptitle(
        f"Milvus Lite, dim {scale['dim']} ({kinds}; random vectors have no neighbourhoods, the worst case for "
        f"IVF/HNSW)\ningest peak RSS by folder size (MB): {scale['ingest_peak_rss_mb']}",
        fontsize=8,
    )
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


if __name__ == "__main__":
    res = bench_scale(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("models"))
    Path("bench").mkdir(exist_ok=True)
    Path("bench/scale.json").write_text(json.dumps(res, indent=1))
    scale_plot(res, Path("bench/scale.png"))
