"""What each model costs: file size, start-up, embedding speed, query and search latency, peak memory, and the
hardware record they were measured on (``provenance.machine()``, with the provider that ran each model).

Speeds are measured on the same sample of images for every model, models interleaved in each repeat and the
median kept, so the machine's slow swings hit every model alike. Figures are measurements: they differ between
runs, which is why they live beside the results (cost.json, comparison.json) and not in results.json.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..embed.decode import load_for_recipes
from ..embed.pipeline import Pipeline
from ..embed.sinks import embed_paths
from ..models.recipe import prepare_batch
from ..models.session import ModelSession
from ..provenance import machine, peak_rss_mb
from ..store.stores import Stores


def _percentiles(seconds: list[float]) -> dict:
    ms = np.asarray(seconds) * 1e3
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3)}


def _one_pass(model: ModelSession, name: str, paths: list[Path], inputs: np.ndarray, batch: int) -> dict:
    """End-to-end img/s (read, decode, resize, infer), model-only img/s, and per-image query latency."""
    t = time.perf_counter()
    embed_paths(Pipeline({name: model}, batch_size=batch, progress=False), paths)
    e2e = len(paths) / (time.perf_counter() - t)
    t = time.perf_counter()
    for s in range(0, len(inputs), batch):
        model.embed(inputs[s : s + batch])
    model_only = len(inputs) / (time.perf_counter() - t)
    latencies = []
    for p in paths:  # a query as a user sends it: one image, decoded and embedded alone
        t = time.perf_counter()
        _, (arr,) = load_for_recipes(p, [model.recipe.geometry])
        model.embed(prepare_batch(arr[None], model.recipe))
        latencies.append(time.perf_counter() - t)
    return {"e2e": e2e, "model_only": model_only, "latencies": latencies}


def measure_costs(
    models: dict[str, ModelSession],
    stores: Stores,
    paths: list[Path],
    query_vectors: dict[str, np.ndarray],
    batch: dict[str, int],
    top_k: int,
    repeats: int = 2,
    progress: bool = False,
) -> dict:
    """Per model the cost figures, plus the run's peak RSS; ``paths`` are readable images of the dataset.
    ``progress``: a bar over the models' input preparation and timed passes (with its ETA)."""
    inputs = {}
    bar = tqdm(total=len(models) * (1 + repeats), unit="pass", desc="cost", disable=not progress, leave=False)
    with bar:
        for name, m in models.items():
            pixels = np.stack([load_for_recipes(p, [m.recipe.geometry])[1][0] for p in paths])
            inputs[name] = prepare_batch(pixels, m.recipe)
            m.embed(inputs[name][: batch[name]])  # warm-up: first-run allocations are not a cost per image
            bar.update(1)
        passes: dict[str, list[dict]] = {name: [] for name in models}
        for _ in range(repeats):
            for name, m in models.items():
                passes[name].append(_one_pass(m, name, paths, inputs[name], batch[name]))
                bar.update(1)
    out = {}
    for name, m in models.items():
        ps = passes[name]
        search_s = []
        for q in query_vectors.get(name, np.zeros((0, m.dim), np.float32)):
            t = time.perf_counter()
            stores.search(name, q[None], top_k)
            search_s.append(time.perf_counter() - t)
        out[name] = {
            "file_mb": round(m.path.stat().st_size / 1e6, 2),
            "startup_s": round(m.startup_s, 3),
            "img_per_s_end_to_end": round(float(np.median([p["e2e"] for p in ps])), 2),
            "img_per_s_model_only": round(float(np.median([p["model_only"] for p in ps])), 2),
            "query_embed": _percentiles([t for p in ps for t in p["latencies"]]),
            "search": _percentiles(search_s) if search_s else None,
            "providers": m.providers_active,
            "provider": m.provider,  # the one that ran the graph: onnxruntime's session after any fallback
            "batch_size": batch[name],
        }
    return {
        "models": out,
        "images": len(paths),
        "repeats": repeats,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "machine": machine(),
    }


def pareto(points: dict[str, tuple[float, float]], better: Callable[[str, str], bool] | None = None) -> list[str]:
    """Names of the points no other point beats on both axes (higher is better on both).

    With ``better(a, b)`` (a's quality is significantly better than b's, a paired test), a point is dominated
    only by another that is at least as fast AND significantly better: a difference within the noise dominates
    nothing.
    """
    if better is not None:
        return sorted(n for n, (x, _) in points.items()
                      if not any(ox >= x and better(o, n) for o, (ox, _) in points.items() if o != n))  # fmt: skip
    return sorted(
        n
        for n, (x, y) in points.items()
        if not any(ox >= x and oy >= y and (ox, oy) != (x, y) for o, (ox, oy) in points.items() if o != n)
    )
