"""The explorer's query latency through its HTTP API (serve.json), per model, at several collection sizes.

Per size, each model's collection holds seeded random unit vectors (ids catalogued against a few generated
images, so hits join and thumbnails work): what grows with n is the store, not the model. Each query is a real
JPEG upload that the server decodes and embeds with the model's own session before searching, so the latency is
what a person waits for: upload + decode + embed + search + catalogue join + calibration, one model per request.
The collections are written in a child process (a Milvus Lite folder stays locked until its process exits),
then ``onnx-search serve`` runs in another child on 127.0.0.1 and this process times requests against it.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from ..provenance import library_versions, machine
from ..synth import generate_labelled_set
from .results import WORK, default_out, write_result


def populate(data_dir: Path, redis_url: str, namespace: str, models: dict[str, Path], n: int, images: Path) -> None:
    """Catalogue ``n`` ids and give every model a collection of ``n`` random unit vectors (in this process)."""
    from ..ids import file_sha256
    from ..models.session import ModelSession, SessionConfig
    from ..store.catalog import ImageRecord
    from ..store.index import IndexParams
    from ..store.stores import StoreSettings, open_stores
    from .scale import unit_vectors

    stores = open_stores(StoreSettings(data_dir, redis_url=redis_url, namespace=namespace, index=IndexParams()))
    files = sorted(images.rglob("*.jpg"))
    ids = list(range(1, n + 1))
    stores.catalog.put_images(
        ImageRecord(i, str(files[i % len(files)]), f"{i:032x}", 1, 1, files[i % len(files)].parent.name, str(images))
        for i in ids
    )
    for seed, (name, path) in enumerate(models.items()):
        dim = ModelSession(path, SessionConfig(["cpu"])).dim
        coll = stores.collection(name)
        stores.vectors.drop(coll)
        stores.vectors.ensure(coll, dim, stores.index, n)
        stores.vectors.upsert(coll, ids, unit_vectors(n, dim, seed))
        stores.vectors.flush(coll)
        stores.catalog.mark_done(name, {i: f"{i:032x}" for i in ids})
        info = {"collection": coll, "dim": dim, "sha256": file_sha256(path), "metric": stores.index.metric}
        stores.catalog.set_model(name, info | {"path": str(path), "weights": "bench"})
    stores.close()


def _start(args: list[str]) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "onnx_search.cli", "serve", *args, "--port", "0", "--providers", "cpu"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if m := re.search(r"explorer: (http://\S+)", line):
            return proc, m.group(1)
    raise RuntimeError(f"serve exited ({proc.wait()}) without printing its URL: {''.join(seen)[-2000:]}")


def _start_again(args: list[str], tries: int = 5) -> tuple[subprocess.Popen, str]:
    """``_start`` right after a server on the same folder stopped: Milvus Lite may hold it a moment longer."""
    for attempt in range(tries):
        try:
            return _start(args)
        except RuntimeError:
            if attempt == tries - 1:
                raise
            time.sleep(3)
    raise AssertionError("unreachable")


def _post(url: str, body: bytes) -> tuple[float, dict]:
    """Round-trip milliseconds of one query, and the server's own split (embed, search) in its answer."""
    t = time.perf_counter()
    with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=120) as r:
        answer = json.loads(r.read())
    return (time.perf_counter() - t) * 1000, answer["timing_ms"]


def _queries(n: int, seed: int = 11) -> list[bytes]:
    """640x480 JPEG photos-like uploads (decoding a realistic upload is part of the latency)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        base = np.linspace(0, 255, 640)[None, :, None] * np.ones((480, 1, 3))
        img = Image.fromarray(np.clip(base + rng.normal(0, 40, base.shape), 0, 255).astype(np.uint8))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def _timed(url: str, body: bytes | None = None, poll: bool = False) -> tuple[float, int]:
    """Milliseconds until the answer (for a map: until it is ready, polling a 202 every 0.25 s) and the status."""
    t = time.perf_counter()
    while True:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=600) as r:
                r.read()
                status = r.status
        except urllib.error.HTTPError as exc:
            exc.read()
            status = exc.code
        except OSError:
            status = 0  # refused, reset or timed out: a failed request
        if not (poll and status == 202):
            return (time.perf_counter() - t) * 1000, status
        time.sleep(0.25)


def first_pool(url: str, query_id: int | str, k: int, token: str | None = None, run: bool = False) -> dict:
    """Judge mode's first answers on a server just started (nothing cached): the list of queries, then the first
    pool of ``query_id`` at ``k``, each timed from request to response. ``first_pool_seconds`` is what a judge
    waits for, opening judge mode, before the first images show (both requests); ``run``: the served run's
    queries, as the page asks for them when a run folder is served."""
    auth = {"Authorization": f"Bearer {token}"} if token else {}

    def timed(path: str) -> tuple[float, int]:
        t = time.perf_counter()
        with urllib.request.urlopen(urllib.request.Request(url + path, headers=auth), timeout=600) as r:
            r.read()
            return time.perf_counter() - t, r.status

    listing_s, s1 = timed(f"api/judge/queries?{'run=0&' if run else ''}k={k}")
    pool_s, s2 = timed(f"api/judge/pool/{query_id}?k={k}")
    again_s, _ = timed(f"api/judge/pool/{query_id}?k={k}")
    if (s1, s2) != (200, 200):
        raise RuntimeError(f"judge mode answered {s1}, {s2}")
    return {
        "first_pool_seconds": round(listing_s + pool_s, 3),
        "queries_list_seconds": round(listing_s, 3),
        "pool_seconds_cold": round(pool_s, 3),
        "pool_seconds_warm": round(again_s, 3),
        "k": k,
    }


def _stats(ms: list[float]) -> dict:
    if not ms:
        return {"n": 0}
    return {
        "n": len(ms),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
        "max_ms": round(float(np.max(ms)), 1),
    }


def mixed_load(
    url: str, models: list[str], ids: list[int], bodies: list[bytes], clients: int = 8, per_client: int = 10, seed=7
) -> dict:
    """``clients`` threads, each sending ``per_client`` mixed queries at once: uploads (every model), id queries
    (every model) and maps (a seeded model, PCA or t-SNE; timed until the map is ready). Per type p50/p99 and the
    failures (any status but 200; a 503 counts). The id query's p50 alone (idle server) is taken first."""
    rng = np.random.default_rng(seed)
    alone = [_timed(f"{url}api/query/{ids[i % len(ids)]}?k=10") for i in range(25)]
    kinds = ["upload"] * 4 + ["id"] * 4 + ["map"] * 2
    plans = []
    for c in range(clients):
        plan = []
        for j, kind in enumerate(rng.permutation(kinds)[:per_client]):
            if kind == "upload":
                plan.append((kind, f"{url}api/query?k=10", bodies[(c * per_client + j) % len(bodies)], False))
            elif kind == "id":
                plan.append((kind, f"{url}api/query/{ids[int(rng.integers(len(ids)))]}?k=10", None, False))
            else:
                method = ["pca", "tsne"][int(rng.integers(2))]
                plan.append((f"map_{method}", f"{url}api/map/{models[int(rng.integers(len(models)))]}?method={method}",
                             None, True))  # fmt: skip
        plans.append(plan)
    results: list[tuple[str, float, int]] = []
    lock, start = threading.Lock(), threading.Barrier(clients)

    def client(plan) -> None:
        start.wait()
        for kind, u, body, poll in plan:
            ms, status = _timed(u, body, poll)
            with lock:
                results.append((kind, ms, status))

    threads = [threading.Thread(target=client, args=(p,)) for p in plans]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t
    per_type = {}
    for kind in sorted({k for k, _, _ in results}):
        rows = [(ms, st) for k, ms, st in results if k == kind]
        per_type[kind] = _stats([ms for ms, st in rows if st == 200]) | {
            "errors": sum(st != 200 for _, st in rows),
            "statuses": sorted({st for _, st in rows}),
        }
    every = [ms for _, ms, st in results if st == 200]
    out = {
        "clients": clients,
        "queries_per_client": per_client,
        "mix": "per client, in a seeded order: 4 uploads (all models), 4 id queries (all models), 2 maps "
        "(a seeded model, PCA or t-SNE, timed until ready; disk cache cleared first)",
        "id_alone": _stats([ms for ms, st in alone if st == 200]) | {"errors": sum(st != 200 for _, st in alone)},
        "per_type": per_type,
        "all": _stats(every) | {"errors": sum(st != 200 for _, _, st in results)},
        "wall_s": round(wall, 2),
    }
    id_load = per_type.get("id", {}).get("p50_ms")
    if id_load and out["id_alone"].get("p50_ms"):
        out["id_p50_under_load_over_alone"] = round(id_load / out["id_alone"]["p50_ms"], 2)
    return out


def bench_serve(
    models_dir: Path,
    models: list[str],
    work: Path,
    sizes=(1000, 10000),
    queries: int = 40,
    top_k: int = 10,
    load_size: int | None = 1000,
    clients: int = 8,
    per_client: int = 10,
) -> dict:
    """Query latency p50/p99 (ms) per model and size through ``POST /api/query``, plus the first PCA map's time."""
    from ..models.session import resolve_model_path
    from ..store.local_redis import LocalRedis

    work.mkdir(parents=True, exist_ok=True)
    images = work / "serve_images"
    generate_labelled_set(images, per_class=4, size=96, seed=1)
    paths = {m: resolve_model_path(m, models_dir).resolve() for m in models}
    server = LocalRedis(work / "serve_redis")
    kw = server.start().connection_pool.connection_kwargs
    redis_url = f"redis://:{kw['password']}@127.0.0.1:{kw['port']}/0"
    bodies = _queries(queries)
    out: dict = {"sizes": {}, "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}
    try:
        for n in sizes:
            data, ns = work / f"serve_{n}", f"bench:serve:{n}"
            code = "import sys, json\nfrom pathlib import Path\nfrom onnx_search.bench.serve import populate\n"
            code += "a = json.loads(sys.argv[1])\npopulate(Path(a['d']), a['r'], a['ns'], "
            code += "{k: Path(v) for k, v in a['m'].items()}, a['n'], Path(a['i']))"
            spec = {"d": str(data), "r": redis_url, "ns": ns, "m": {k: str(v) for k, v in paths.items()}, "n": n}
            spec["i"] = str(images)
            subprocess.run([sys.executable, "-c", code, json.dumps(spec)], check=True, timeout=3600)
            proc, url = _start(["--data-dir", str(data), "--redis-url", redis_url, "--namespace", ns])
            try:
                out.setdefault("first_pool", {})[str(n)] = first_pool(url, 1, top_k)  # cold: the server just began
                out.setdefault("first_pool_seconds", out["first_pool"][str(n)]["first_pool_seconds"])
                per_model = {}
                for m in models:
                    q = f"{url}api/query?k={top_k}&models={m}"
                    for body in bodies[:3]:
                        _post(q, body)  # warm-up: first-call allocations, Milvus load
                    timed = [_post(q, body) for body in bodies]
                    ms = [t for t, _ in timed]
                    t = time.perf_counter()
                    _timed(f"{url}api/map/{m}?method=pca", poll=True)  # a 202 while computing, polled until ready
                    map_s = time.perf_counter() - t
                    with urllib.request.urlopen(f"{url}api/map/{m}?method=pca", timeout=3600) as r:
                        points = len(json.loads(r.read())["ids"])
                    per_model[m] = {
                        "p50_ms": round(float(np.percentile(ms, 50)), 1),
                        "p99_ms": round(float(np.percentile(ms, 99)), 1),
                        "mean_ms": round(float(np.mean(ms)), 1),
                        "server_embed_p50_ms": round(float(np.median([x["embed"] for _, x in timed])), 1),
                        "server_search_p50_ms": round(float(np.median([x["search"] for _, x in timed])), 1),
                        "queries": len(ms),
                        "first_pca_map_s": round(map_s, 2),
                        "map_points": points,
                    }
                    print(f"serve latency n={n} {m}: {per_model[m]}", flush=True)
                out["sizes"][str(n)] = per_model
            finally:
                proc.terminate()
                proc.wait(timeout=60)
            if n == load_size:  # a fresh server, maps not cached, under clients x per_client mixed queries
                shutil.rmtree(data / "explorer" / "maps", ignore_errors=True)
                proc, url = _start_again(["--data-dir", str(data), "--redis-url", redis_url, "--namespace", ns])
                try:
                    ids = list(range(1, n + 1, max(1, n // 200)))
                    out["load"] = {"size": n, "models": models} | mixed_load(
                        url, models, ids, bodies, clients, per_client
                    )
                    print(f"serve load n={n}: {json.dumps(out['load'])}", flush=True)
                finally:
                    proc.terminate()
                    proc.wait(timeout=60)
    finally:
        server.stop()
    out |= {
        "what": "POST /api/query per model (upload -> decode -> embed -> search -> join -> calibrate), 640x480 JPEG",
        "collection_vectors": "seeded random unit vectors (the model embeds only the query)",
        "top_k": top_k,
        "index": "FLAT (Milvus Lite), metric COSINE",
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],  # other work on the CPU slows every figure
        "machine": machine(),
        "versions": library_versions(),
    }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models-dir", default="models", type=Path)
    ap.add_argument("--models", default="efficientnet-lite0,resnet50,vgg16")
    ap.add_argument("--out", type=Path, default=default_out(), help="results folder (default: %(default)s)")
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--queries", type=int, default=40)
    ap.add_argument("--load-size", type=int, default=1000, help="collection size of the mixed load (0: none)")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--per-client", type=int, default=10)
    ap.add_argument("--json-name", default="serve.json", help="file name under --out")
    args = ap.parse_args(argv)
    res = bench_serve(
        args.models_dir,
        args.models.split(","),
        WORK,
        [int(s) for s in args.sizes.split(",")],
        args.queries,
        load_size=args.load_size or None,
        clients=args.clients,
        per_client=args.per_client,
    )
    write_result(args.out, args.json_name, res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
