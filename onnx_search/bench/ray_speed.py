"""Ray engine vs local engine on one machine: the same folder ingested by each, alternately (ray.json).

Run inside a loopback-only network namespace (`make bench` does: unshare -n), since a Ray cluster opens ports.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ..embed.ray_engine import RaySettings
from ..ingest import ingest
from ..models.session import ModelSession, SessionConfig
from ..provenance import library_versions, machine
from ..store.catalog import Catalog
from ..store.local_redis import LocalRedis
from ..store.milvus import VectorStore, connect_milvus
from ..store.stores import Stores
from ..synth import generate_labelled_set


def _fresh_stores(redis, work: Path, tag: str) -> Stores:
    return Stores(
        Catalog(redis, f"bench:{tag}:{time.time_ns()}"), VectorStore(connect_milvus(None, work / tag)), f"b_{tag}"
    )


def bench_ray(models_dir: Path, model: str = "resnet50", images: int = 240, reps: int = 2, actors: int = 1) -> dict:
    import ray

    work = Path(tempfile.mkdtemp())
    folder = work / "photos"
    generate_labelled_set(folder, per_class=-(-images // 6), size=160, seed=4)
    session = {model: ModelSession(models_dir / f"{model}.onnx", SessionConfig(["cpu"]))}
    server = LocalRedis(work / "redis")
    redis = server.start()
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    rates: dict[str, list[float]] = {"local": [], "ray": []}
    vecs = {}
    try:
        for rep in range(reps):
            for engine in ("local", "ray"):
                stores = _fresh_stores(redis, work, f"{engine}{rep}")
                t = time.perf_counter()
                r = ingest(folder, session, stores, progress=False,
                           engine=RaySettings(actors=actors) if engine == "ray" else None)  # fmt: skip
                rates[engine].append(sum(r.embedded.values()) / (time.perf_counter() - t))
                ids = sorted(stores.catalog.ids())
                vecs[engine] = (ids, stores.fetch(model, ids))
    finally:
        ray.shutdown()
        server.stop()
    same_ids = vecs["local"][0] == vecs["ray"][0]
    ratio = [r / lo for r, lo in zip(rates["ray"], rates["local"], strict=True)]
    return {
        "machine": machine(),
        "versions": library_versions(),
        "model": model,
        "images": images,
        "actors_per_model": actors,
        "img_per_s": {k: [round(v, 2) for v in vs] for k, vs in rates.items()},
        "ray_over_local": round(float(np.median(ratio)), 3),
        "same_ids": same_ids,
        "max_abs_vector_diff": float(np.abs(vecs["local"][1] - vecs["ray"][1]).max()) if same_ids else None,
        "method": "the same folder ingested into fresh stores by each engine, alternately; whole ingest timed",
    }


def main(models_dir: Path, sizes=(240, 720)) -> dict:
    """The comparison at several folder sizes: a fixed start-up cost shows as a ratio that rises with the size."""
    runs = {str(n): bench_ray(models_dir, images=n) for n in sizes}
    largest = runs[str(max(sizes))]
    return {"by_images": runs, "ray_over_local": largest["ray_over_local"], "images": max(sizes),
            "max_abs_vector_diff": max(r["max_abs_vector_diff"] or 0.0 for r in runs.values())}  # fmt: skip


if __name__ == "__main__":
    from .results import default_out, write_result

    # python -m onnx_search.bench.ray_speed [MODELS_DIR [OUT_DIR]] (OUT_DIR default: bench/results/<machine>)
    out = main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("models"))
    write_result(Path(sys.argv[2]) if len(sys.argv) > 2 else default_out(), "ray.json", out)
    for n, r in out["by_images"].items():
        print(f"{n} images: ray/local {r['ray_over_local']} {r['img_per_s']}, max |diff| {r['max_abs_vector_diff']}")
