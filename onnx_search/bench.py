"""``make bench``: side-by-side, interleaved measurements written as JSON (bench/embed.json, bench/store.json).

Every ratio compares variants measured in the same process, alternating, after warm-up, so the machine's
slow swings hit both sides alike; each figure is the median of several passes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from .convert import build_keras_model, keras_forward, parity_images
from .experiment import library_versions
from .pipeline import Embedder
from .preprocess import normalize
from .runner import OnnxEmbedder, RunnerOptions
from .weights import WeightsChoice
from .zoo import get_spec


def _machine() -> dict:
    return {"platform": platform.platform(), "cpus": os.cpu_count(), "processor": platform.processor()}


def _rate(fn, images: int) -> float:
    t = time.perf_counter()
    fn()
    return images / (time.perf_counter() - t)


def _keras_for(model: OnnxEmbedder):
    """The Keras model the ONNX file was converted from (same weights, per its metadata)."""
    spec = get_spec(model.meta["name"])
    label = model.meta["weights"]
    if label.startswith("random:"):
        choice = WeightsChoice(None, label, int(label.split(":")[1]))
    elif label.startswith("file:"):
        choice = WeightsChoice(label[5:], label)
    else:
        choice = WeightsChoice("imagenet", label)
    return keras_forward(build_keras_model(spec, choice))


def photo_folder(root: Path, n: int, seed: int = 0) -> Path:
    """``n`` photo-sized JPEGs (640x480, smooth content plus noise), generated, not downloaded."""
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:480, 0:640]
    for i in range(n):
        p = root / f"photo_{i:04d}.jpg"
        if p.exists():
            continue
        a, b, c = rng.uniform(0.005, 0.03, 3)
        base = np.stack([np.sin(xx * a + i), np.cos(yy * b), np.sin((xx + yy) * c)], -1) * 100 + 128
        img = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(p, quality=88)
    return root


def bench_embed(
    models_dir: Path, names: list[str], batches=(1, 8, 32), reps: int = 3, photos: int = 96, work: Path | None = None
) -> dict:
    """ORT vs Keras img/s per batch size, and end-to-end ``embed`` vs model-only throughput."""
    out: dict = {
        "machine": _machine(),
        "versions": library_versions(),
        "batch_sizes": list(batches),
        "reps": reps,
        "method": "median of interleaved passes after warm-up; ratio = ORT / Keras",
    }
    work = work or Path(tempfile.mkdtemp())
    folder = photo_folder(work / "photos", photos)
    files = sorted(folder.glob("*.jpg"))
    for name in names:
        out[name] = _bench_model(models_dir, name, batches, reps, files)
    return out


def _bench_model(models_dir: Path, name: str, batches, reps: int, files: list[Path]) -> dict:
    """One model: ORT vs Keras per batch size, then end-to-end vs model-only."""
    ort_model = OnnxEmbedder(models_dir / f"{name}.onnx", RunnerOptions(["cpu"]))
    keras = _keras_for(ort_model)
    spec = get_spec(name)
    x32 = normalize(parity_images(spec, n=max(batches), seed=5), spec.preprocess)
    raw: dict = {"ort": {b: [] for b in batches}, "keras": {b: [] for b in batches}}
    for b in batches:  # warm-up: graph tracing, allocations
        ort_model.embed(x32[:b])
        keras(x32[:b]).numpy()
    for _ in range(reps):
        for b in batches:
            iters = max(1, 32 // b)
            x = x32[:b]
            raw["ort"][b].append(_rate(lambda x=x, n=iters: [ort_model.embed(x) for _ in range(n)], b * iters))
            raw["keras"][b].append(_rate(lambda x=x, n=iters: [keras(x).numpy() for _ in range(n)], b * iters))
    med = {e: {b: float(np.median(v)) for b, v in d.items()} for e, d in raw.items()}
    res = {
        "img_per_s": {e: {str(b): round(v, 2) for b, v in d.items()} for e, d in med.items()},
        "ratio_by_batch": {str(b): round(med["ort"][b] / med["keras"][b], 3) for b in batches},
        "raw_img_per_s": {e: {str(b): [round(v, 2) for v in vs] for b, vs in d.items()} for e, d in raw.items()},
        "providers": ort_model.providers_active,
    }
    res["ort_over_keras"] = res["ratio_by_batch"][str(max(batches))]
    # end to end (read, decode, resize, normalise, infer) vs model-only, interleaved
    bs = max(batches)
    emb = Embedder({name: ort_model}, batch_size=bs, progress=False)
    tasks = [(p, frozenset([name])) for p in files]
    xs = normalize(parity_images(spec, n=bs, seed=6), spec.preprocess)
    e2e, model_only = [], []
    n_batches = -(-len(files) // bs)
    list(emb.run(tasks[:bs]))  # warm-up
    for _ in range(reps):
        e2e.append(_rate(lambda: list(emb.run(tasks)), len(files)))
        model_only.append(_rate(lambda: [ort_model.embed(xs) for _ in range(n_batches)], n_batches * bs))
    res["end_to_end_img_per_s"] = round(float(np.median(e2e)), 2)
    res["model_only_img_per_s"] = round(float(np.median(model_only)), 2)
    res["end_to_end_fraction"] = round(float(np.median(e2e)) / float(np.median(model_only)), 3)
    res["end_to_end"] = {
        "photos": len(files),
        "size": "640x480 JPEG",
        "batch_size": bs,
        "decode_workers": emb.workers,
        "raw_e2e": [round(v, 2) for v in e2e],
        "raw_model_only": [round(v, 2) for v in model_only],
    }
    print(
        f"{name}: ORT/Keras {res['ratio_by_batch']}, end-to-end {res['end_to_end_fraction']:.0%} of model-only "
        f"({res['end_to_end_img_per_s']} vs {res['model_only_img_per_s']} img/s)",
        flush=True,
    )
    return res


def bench_store(
    models_dir: Path,
    name: str = "resnet50",
    n_images: int = 1500,
    n_queries: int = 50,
    top_k: int = 10,
    work: Path | None = None,
) -> dict:
    """Insert throughput (Milvus, Redis) vs embedding throughput; recall@k and latency per index setting."""
    from .catalog import Catalog, ImageRecord
    from .ids import image_id
    from .redis_server import LocalRedis
    from .stores import connect_milvus
    from .sweep import evaluate_variants
    from .synth import generate_labelled_set
    from .vectors import IndexConfig, VectorStore

    work = work or Path(tempfile.mkdtemp())
    per_class = -(-(n_images + n_queries) // 6)
    files = generate_labelled_set(work / "images", per_class=per_class, size=96, seed=1)
    model = OnnxEmbedder(models_dir / f"{name}.onnx", RunnerOptions(["cpu"]))
    emb = Embedder({name: model}, batch_size=32, progress=False)
    vecs, paths = [], []
    t = time.perf_counter()
    for b in emb.run([(p, frozenset([name])) for p in files]):
        vecs.append(b.vectors[name][1])
        paths += [it.path for it in b.items]
    embed_rate = len(paths) / (time.perf_counter() - t)
    allv = np.concatenate(vecs)
    rng = np.random.default_rng(0)
    qidx = rng.choice(len(paths), size=n_queries, replace=False)
    mask = np.ones(len(paths), bool)
    mask[qidx] = False
    base, queries = allv[mask], allv[qidx]
    ids = [image_id(p) for p, keep in zip(paths, mask, strict=True) if keep]
    server = LocalRedis(work / "data")
    catalog = Catalog(server.start(), "bench")
    store = VectorStore(connect_milvus(None, work / "data"))
    records = [
        ImageRecord(i, str(p), "0" * 32, 1, 1, p.parent.name, str(work))
        for i, p in zip(ids, [p for p, k in zip(paths, mask, strict=True) if k], strict=True)
    ]
    milvus_rates, redis_rates = [], []
    for rep in range(3):  # interleaved passes
        coll = f"bench_insert_{rep}"
        store.drop(coll)
        store.ensure(coll, allv.shape[1], IndexConfig(), len(ids))
        milvus_rates.append(_rate(lambda c=coll: (store.upsert(c, ids, base), store.flush(c)), len(ids)))
        redis_rates.append(
            _rate(
                lambda: (catalog.put_images(records), catalog.mark_done(name, {r.id: r.sha for r in records})), len(ids)
            )
        )
        store.drop(coll)
    variants = [IndexConfig("COSINE", "FLAT")]
    variants += [IndexConfig("COSINE", "IVF_FLAT", {}, {"nprobe": p}) for p in (1, 4, 16, 64)]
    variants += [
        IndexConfig("COSINE", "HNSW", {"M": 16, "efConstruction": 200}, {"ef": e}) for e in (10, 20, 40, 80, 160)
    ]
    rows = evaluate_variants(store, ids, base, queries, variants, top_k, "bench_index")
    frontier = []
    for r in sorted(rows, key=lambda r: r["p50_ms"]):
        if not frontier or r["recall_at_k"] > frontier[-1]["recall_at_k"]:
            frontier.append(
                {"index": r["index"], "search": r["search"], "recall_at_k": r["recall_at_k"], "p50_ms": r["p50_ms"]}
            )
    server.stop()
    m_rate, r_rate = float(np.median(milvus_rates)), float(np.median(redis_rates))
    out = {
        "machine": _machine(),
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
        "frontier": frontier,
    }
    print(
        f"store: Milvus {m_rate:.0f} rows/s ({m_rate / embed_rate:.1f}x embedding), Redis {r_rate:.0f} rows/s "
        f"({r_rate / embed_rate:.1f}x); index recall/p50: "
        + ", ".join(f"{r['index']}{r['search']} {r['recall_at_k']:.3f}/{r['p50_ms']:.1f}ms" for r in rows),
        flush=True,
    )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models-dir", default="models", type=Path)
    ap.add_argument("--out", default="bench", type=Path)
    ap.add_argument("--models", default="resnet50,vgg16")
    ap.add_argument("--only", choices=["embed", "store"], default=None)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--store-images", type=int, default=1500)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.out / "work"
    if args.only in (None, "embed"):
        res = bench_embed(args.models_dir, args.models.split(","), reps=args.reps, work=work)
        (args.out / "embed.json").write_text(json.dumps(res, indent=1))
    if args.only in (None, "store"):
        res = bench_store(args.models_dir, n_images=args.store_images, work=work)
        (args.out / "store.json").write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
