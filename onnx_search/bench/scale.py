"""How each cost grows with the collection (scale.json + scale.png), on real embeddings.

Vectors: the trained EfficientNet-Lite0's embeddings of augmented package photos (``real_vectors``: 10,000 by
default, embedded once and kept under the work folder). 100 of them, held out, are the queries at every size. Past
the real vectors a collection grows with samples of a model fitted to them (``growth_model``): PCA to 64 dimensions,
a diagonal Gaussian mixture there (32 components), the PCA residual added back as per-dimension Gaussian noise,
each row L2-normalised. Per size: recall@10 against exact search (tolerant of ties), p50/p99 of one query at a
time and build time (upsert + flush) for FLAT, IVF_FLAT (nlist x nprobe swept) and HNSW (M x ef swept) in Milvus
Lite; Redis catalogue memory per image; and the peak RSS of a whole ingest at two folder sizes (a child process
each, so one's memory cannot hide in the other's).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ..experiment.sweep import evaluate_variants, exact_top_k
from ..store.catalog import Catalog, ImageRecord
from ..store.index import IndexSpec
from ..store.local_redis import LocalRedis
from ..store.milvus import VectorStore, connect_milvus
from ..synth import generate_labelled_set

NPROBES = (1, 4, 8, 16, 32, 64)
EFS = (16, 32, 64, 128, 256)
TARGET_RECALL = 0.99


def index_grid(n: int) -> list[IndexSpec]:
    """FLAT; IVF_FLAT with nlist 2·sqrt(n) and 4·sqrt(n), each at every nprobe; HNSW M 8/16/32 (16/32 past 20k
    rows: each build is minutes there) with efConstruction 200, each at every ef."""
    grid = [IndexSpec(type="FLAT")]
    for nlist in sorted({max(1, round(2 * math.sqrt(n))), max(1, round(4 * math.sqrt(n)))}):
        for nprobe in sorted({min(p, nlist) for p in NPROBES}):
            grid.append(IndexSpec(type="IVF_FLAT", params={"nlist": nlist}, search={"nprobe": nprobe}))
    for m in (8, 16, 32) if n <= 20_000 else (16, 32):
        grid += [IndexSpec(type="HNSW", params={"M": m, "efConstruction": 200}, search={"ef": ef}) for ef in EFS]
    return grid


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def unit_vectors(n: int, dim: int, seed: int) -> np.ndarray:
    return unit(np.random.default_rng(seed).normal(size=(n, dim)))


def growth_model(real: np.ndarray, seed: int = 0, dims: int = 64, components: int = 32):
    """A sampler of vectors like ``real`` (see the module's docstring) and a description of it."""
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture

    dims = min(dims, len(real) - 1, real.shape[1])
    components = max(1, min(components, len(real) // 20))
    pca = PCA(dims, random_state=seed).fit(real)
    z = pca.transform(real)
    gmm = GaussianMixture(components, covariance_type="diag", random_state=seed, reg_covar=1e-5).fit(z)
    resid_sd = (real - pca.inverse_transform(z)).std(axis=0)

    def sample(m: int, s: int) -> np.ndarray:
        gmm.random_state = s
        zs, _ = gmm.sample(m)
        rng = np.random.default_rng(s)
        x = pca.inverse_transform(zs[rng.permutation(m)]) + rng.normal(0, 1, (m, real.shape[1])) * resid_sd
        return unit(x)

    info = {
        "model": "PCA + diagonal Gaussian mixture + per-dimension Gaussian residual, rows L2-normalised",
        "fitted_on": len(real),
        "pca_dims": dims,
        "pca_explained_variance": round(float(pca.explained_variance_ratio_.sum()), 3),
        "components": components,
    }
    return sample, info


def nearest_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Mean cosine of each row of ``a`` to its nearest row of ``b``: how tight the neighbourhoods are."""
    return float(exact_top_k(b, a, 1)[1].mean())


def best_settings(rows: list[dict], target: float = TARGET_RECALL) -> dict:
    """Per index type, the fastest setting (p50) whose recall reaches ``target`` (else the best recall)."""
    out = {}
    for kind in ("FLAT", "IVF_FLAT", "HNSW"):
        mine = [r for r in rows if r["index"] == kind]
        ok = [r for r in mine if r["recall_at_k"] >= target]
        pick = min(ok, key=lambda r: r["p50_ms"]) if ok else max(mine, key=lambda r: r["recall_at_k"])
        out[kind] = {k: pick[k] for k in ("params", "search", "recall_at_k", "p50_ms", "p99_ms", "build_s")}
        out[kind]["reaches_target"] = bool(ok)
        params, search = (json.dumps(pick[k]).replace('"', "") for k in ("params", "search"))
        out[kind]["yaml"] = f"index: {{type: {kind}, params: {params}, search: {search}}}"
    return out


def recommendation(stores: dict, target: float = TARGET_RECALL) -> dict:
    """Per index type, the setting that reaches ``target`` recall at every measured size from some size on, and
    from which size it is faster (p50) than FLAT: the line a user copies into the YAML."""
    out = {}
    sizes = sorted(int(n) for n in stores)
    for kind in ("IVF_FLAT", "HNSW"):
        best = {n: stores[str(n)]["best"][kind] for n in sizes}
        flat = {n: stores[str(n)]["best"]["FLAT"]["p50_ms"] for n in sizes}
        faster = [n for n in sizes if best[n]["reaches_target"] and best[n]["p50_ms"] < flat[n]]
        n0, b = (faster[0] if faster else None), best[sizes[-1]]  # the largest size's setting holds below it too
        out[kind] = {
            "from_vectors": n0,
            "yaml": b["yaml"],
            "per_size": {
                str(n): {k: best[n][k] for k in ("params", "search", "recall_at_k", "p50_ms", "reaches_target")}
                | {"flat_p50_ms": flat[n]}
                for n in sizes
            },
            "text": (
                f"from {n0:,} vectors on it beats FLAT; {b['yaml']} keeps recall@10 >= {target}: at {sizes[-1]:,} "
                f"vectors recall {b['recall_at_k']:.3f}, p50 {b['p50_ms']:.1f} ms (FLAT {flat[sizes[-1]]:.1f} ms)"
                if n0
                else f"not faster than FLAT at recall >= {target} at any measured size"
            ),
        }
    return out


def store_costs(store: VectorStore, base: np.ndarray, queries: np.ndarray, top_k: int = 10) -> list[dict]:
    """Insert rate and per-index build/search/recall on ``base`` (ids 1..n), over the whole grid."""
    ids = list(range(1, len(base) + 1))
    rows = evaluate_variants(store, ids, base, queries, index_grid(len(base)), top_k, f"s{len(base)}", repeats=2)
    for r in rows:
        r["insert_rows_per_s"] = round(len(base) / r["build_s"], 1)  # upsert + flush (the index is built on flush)
        r["p50_ms"], r["p99_ms"] = round(r["p50_ms"], 3), round(r["p99_ms"], 3)
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


def bench_scale(
    models_dir: Path,
    work: Path | None = None,
    sizes=(1_000, 10_000, 100_000),
    rss_sizes=(1_000, 10_000),
    real_model: str = "efficientnet-lite0",
    real_images: int = 10_000,
    queries: int = 100,
) -> dict:
    """The scale figures; ``rss_sizes`` are folder sizes for the ingest-RSS pair, ingested with a tiny pixel-mean
    model so that what grows is the pipeline and the stores, not the time a network takes."""
    from ..models.tiny import write_pixel_mean_model
    from .real_vectors import real_vectors

    work = work or Path(tempfile.mkdtemp())
    real, made = real_vectors(models_dir / f"{real_model}.onnx", work / "real", n=real_images)
    nq = min(queries, len(real) // 5)
    q, pool = real[:nq], real[nq:]
    grow = max(0, max(sizes) - len(pool))
    sample, growth = growth_model(pool)
    if grow:
        pool = np.concatenate([pool, sample(grow, 1)])
    synth_check = sample(nq, 2)
    real_part = pool[: len(real) - nq]
    out: dict = {
        "sizes": list(sizes),
        "dim": int(real.shape[1]),
        "real_vectors": {k: v for k, v in made.items() if k != "photo_index"} | {"queries_held_out": nq},
        "growth": growth
        | {
            "used_past": len(real) - nq,
            # nearest-neighbour cosine into the real vectors: held-out real queries vs the model's samples
            "nn_cosine_real_queries": round(nearest_cosine(q, real_part), 4),
            "nn_cosine_model_samples": round(nearest_cosine(synth_check, real_part), 4),
        },
        "target_recall": TARGET_RECALL,
        "stores": {},
        "catalogue_bytes_per_image": {},
    }
    server = LocalRedis(work / "redis")
    client = server.start()
    try:
        for n in sizes:
            base = pool[:n]
            store = VectorStore(connect_milvus(None, work / f"milvus_{n}"))
            n_real = min(n, len(real) - nq)
            rows = store_costs(store, base, q)
            out["stores"][str(n)] = {
                "vectors": "real" if n_real == n else f"{n_real} real + {n - n_real} from the growth model",
                "real_rows": n_real,
                "indexes": rows,
                "best": best_settings(rows),
            }
            out["catalogue_bytes_per_image"][str(n)] = round(catalogue_bytes_per_image(client, n), 1)
            figures = [
                f"{k} {v['yaml']} recall {v['recall_at_k']:.3f} p50 {v['p50_ms']:.1f}ms build {v['build_s']:.1f}s"
                for k, v in out["stores"][str(n)]["best"].items()
            ]
            print(f"scale {n}: " + "; ".join(figures), flush=True)
            store.close()
    finally:
        server.stop()
    out["recommendation"] = recommendation(out["stores"])
    rss, tiny = {}, write_pixel_mean_model(work / "pixel_mean.onnx", like="resnet50")  # NHWC, any recipe will do
    for n in rss_sizes:
        folder = work / f"folder_{n}"
        generate_labelled_set(folder, per_class=-(-n // 6), size=64, seed=n)
        rss[str(n)] = round(ingest_peak_rss_mb(folder, models_dir, work / f"ingest_{n}", str(tiny)), 1)
    out["ingest_peak_rss_mb"] = rss
    small, large = (rss[str(n)] for n in rss_sizes)
    out["ingest_rss_growth"] = round(large / small, 3)
    return out


def scale_plot(scale: dict, out: Path) -> Path:
    """Search p50 (log) and recall@10 against collection size: per index, its fastest setting at the target recall."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [int(n) for n in scale["stores"]]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    for idx in ("FLAT", "IVF_FLAT", "HNSW"):
        rows = [scale["stores"][str(n)]["best"][idx] for n in sizes]
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
        f"Milvus Lite, dim {scale['dim']}, trained Lite0 embeddings ({kinds}); each index at its fastest setting "
        f"with recall >= {scale['target_recall']}\ningest peak RSS by folder size (MB): {scale['ingest_peak_rss_mb']}",
        fontsize=8,
    )
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


if __name__ == "__main__":
    import argparse

    from .results import WORK, default_out, write_result

    ap = argparse.ArgumentParser(description="scale.json from real embeddings")
    ap.add_argument("--models-dir", default="models", type=Path)
    ap.add_argument("--out", type=Path, default=default_out(), help="results folder (default: %(default)s)")
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--rss-sizes", default="1000,10000")
    a = ap.parse_args()
    sz, rs = [int(v) for v in a.sizes.split(",")], [int(v) for v in a.rss_sizes.split(",")]
    res = bench_scale(a.models_dir, WORK / "scale", sizes=sz, rss_sizes=rs)
    write_result(a.out, "scale.json", res)
    scale_plot(res, a.out / "scale.png")
