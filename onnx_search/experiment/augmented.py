"""The augmented-query phase: perturbed copies of sampled images, searched with every model, scored by where
each copy's original lands, with every cosine also placed in its model's baseline (calibration.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tqdm import tqdm

from ..embed.decode import read_bytes
from ..embed.images import embed_images
from ..ids import content_hash, image_id
from ..models.session import ModelSession
from ..store.stores import Stores
from .augment import Copy, copy_side, copy_source, make_copy
from .calibration import baseline, describe, percentile, sample_ids, zscore
from .config import Augment
from .copycache import CopyCache, copy_key, model_key
from .robustness import robustness_table


def baselines(
    stores: Stores, models, qpaths: list[Path], qvecs: dict[str, np.ndarray], ids: list[int], seed: int
) -> dict:
    """Per model the sorted baseline cosines between the run's queries and a seeded sample of the collection."""
    sample = sample_ids(ids, seed)
    qids = [image_id(p) for p in qpaths]
    out = {}
    for m in models:
        present = stores.fetch_present(m, sample)
        keep = [i for i in sample if i in present]
        if keep and len(qvecs[m]):
            out[m] = baseline(qvecs[m], np.stack([present[i] for i in keep]), qids, keep)
    return out


def calibrate_hits(hits: list[dict], bases: dict[str, np.ndarray]) -> None:
    """Add each hit's percentile in, and z-score against, its model's baseline."""
    for h in hits:
        base = bases.get(h["model"])
        if base is not None and base.size:
            h["percentile"] = round(float(percentile(h["cosine"], base)), 6)
            h["z"] = round(float(zscore(h["cosine"], base)), 6)


def _pick(catalogued: list[Path], aug: Augment) -> list[Path]:
    ordered = sorted(catalogued)
    n = min(aug.sample, len(ordered))
    return [ordered[i] for i in sorted(np.random.default_rng(aug.seed).choice(len(ordered), n, replace=False))]


def _model_key(m: ModelSession) -> str:
    return model_key(m.identity, ort.__version__, m.providers_active)


def _embed_pending(models: dict[str, ModelSession], keys: dict[str, str], pending: list, cache: CopyCache,
                   vectors: dict[str, dict[int, np.ndarray]], batch: int) -> None:  # fmt: skip
    """Embed the pending copies (index, copy key, image, params, models missing) with the models they miss, store
    the vectors in ``vectors`` and the cache; empties ``pending``."""
    for name, m in models.items():
        todo = [(c, k, img, params) for c, k, img, params, miss in pending if name in miss]
        if not todo:
            continue
        made = embed_images({name: m}, [img for _, _, img, _ in todo], batch)[name]
        for (c, k, _, params), v in zip(todo, made, strict=True):
            vectors[name][c] = v
            cache.put(keys[name], k, v, params)
    pending.clear()


def copy_vectors(
    originals: list[Path],
    transforms: list[str],
    seed: int,
    models: dict[str, ModelSession],
    cache: CopyCache,
    batch: int = 32,
    progress: bool = False,
) -> tuple[list[Copy], dict[str, np.ndarray], list[tuple[str, str]]]:
    """Every original's copies (one per transform, as ``augment.make_copies`` orders and seeds them) and their
    vectors for every model, made in bounded memory: one original decoded at a time (``copy_source`` at
    ``copy_side`` of the models' geometries), at most ``batch`` copy images held before they are embedded and
    dropped. A (copy, model) vector in ``cache`` is read back, not made; an original whose copies are all cached
    is read (for its content hash) but never decoded. The copies keep no pixels (``Copy.image`` makes one again)."""
    side = copy_side([m.recipe.geometry for m in models.values()])
    keys = {name: _model_key(m) for name, m in models.items()}
    copies: list[Copy] = []
    skipped: list[tuple[str, str]] = []
    vectors: dict[str, dict[int, np.ndarray]] = {name: {} for name in models}
    pending: list = []
    bar = tqdm(total=len(originals) * len(transforms), unit="copy", desc="copies", disable=not progress, leave=False)
    with bar:
        for i, path in enumerate(originals):
            try:
                data = read_bytes(path)
            except Exception as exc:  # noqa: BLE001 - reported, and the other originals go on
                skipped.append((str(path), f"original cannot be read: {exc}"))
                bar.update(len(transforms))
                continue
            digest = content_hash(data)
            keyed = [copy_key(digest, name, seed, i, j, side) for j, name in enumerate(transforms)]
            got = [{m: cache.get(keys[m], k) for m in models} for k in keyed]
            img = None
            if any(g is None for per in got for g in per.values()):
                try:
                    img = copy_source(data, side)
                except Exception as exc:  # noqa: BLE001 - reported, and the other originals go on
                    skipped.append((str(path), f"original cannot be read: {exc}"))
                    bar.update(len(transforms))
                    continue
            for j, (name, key, per) in enumerate(zip(transforms, keyed, got, strict=True)):
                miss = [m for m, g in per.items() if g is None]
                if miss:
                    out, params = make_copy(img, name, seed, i, j)
                    params = json.loads(json.dumps(params))  # as results.json and the cache hold them
                    pending.append((len(copies), key, out, params, miss))
                else:
                    params = next(iter(per.values()))[1] if per else {}
                for m, g in per.items():
                    if g is not None:
                        vectors[m][len(copies)] = g[0]
                copies.append(Copy(path, name, params, source=(seed, i, j, side)))
                bar.update(1)
                if len(pending) >= batch:
                    _embed_pending(models, keys, pending, cache, vectors, batch)
            del data, img
            bar.set_postfix(cached=cache.hits, made=cache.writes, refresh=False)
        _embed_pending(models, keys, pending, cache, vectors, batch)
    out = {name: np.stack([vectors[name][c] for c in range(len(copies))]) if copies
           else np.zeros((0, m.dim), np.float32) for name, m in models.items()}  # fmt: skip
    return copies, out, skipped


def _rank(ids: list[int], same: set[int], original: int) -> tuple[int | None, str | None]:
    """The first position (1-based) whose id shows the same picture as the original, and whether that id is the
    original itself or a duplicate of it; (None, None) when none is in the list."""
    for pos, h in enumerate(ids, 1):
        if h in same:
            return pos, "original" if h == original else "duplicate"
    return None, None


def run_augmented(
    aug: Augment,
    stores: Stores,
    models: dict[str, ModelSession],
    catalogued: list[Path],
    bases: dict[str, np.ndarray],
    top_k: int,
    batch: int = 32,
    *,
    cache_dir: Path | None = None,
    progress: bool = False,
    same_image: dict[int, set[int]] | None = None,
) -> tuple[dict, list[Copy]]:
    """The robustness section of results.json, and the copies (for the grid of misses; they keep no pixels).

    A copy's rank is the first position of its top-k that shows the same picture as its original: the original
    itself, or an id that ``same_image[original]`` names (its duplicates, the original included); without an
    entry only the original counts. Each row says which it was (``rank_via``: "original" or "duplicate").
    ``cache_dir``: where the copies' vectors are kept between runs (None: nothing kept)."""
    cache = CopyCache(cache_dir)
    copies, vecs, skipped = copy_vectors(_pick(catalogued, aug), aug.transforms, aug.seed, models, cache, batch,
                                         progress)  # fmt: skip
    originals = [image_id(c.original) for c in copies]
    rows, missing = [], {}
    same_image = same_image or {}
    for m in models:
        stored = stores.fetch_present(m, sorted(set(originals)))
        missing[m] = sorted({str(c.original) for c, o in zip(copies, originals, strict=True) if o not in stored})
        found = stores.search(m, vecs[m], top_k) if len(copies) else []
        base = bases.get(m)
        for i, (c, o, hits) in enumerate(zip(copies, originals, found, strict=True)):
            if o not in stored:
                continue  # reported in missing_originals, left out of the metrics
            ids = [h for h, _ in hits]
            rank, via = _rank(ids, same_image.get(o, {o}) | {o}, o)
            true_cos = float(vecs[m][i] @ stored[o])
            row = {"copy": i, "model": m, "transform": c.transform, "rank": rank, "rank_via": via,
                   "true_cosine": round(true_cos, 6), "top1_id": ids[0] if ids else None}  # fmt: skip
            if base is not None and base.size:
                row |= {"true_percentile": round(float(percentile(true_cos, base)), 6),
                        "true_z": round(float(zscore(true_cos, base)), 6)}  # fmt: skip
            rows.append(row)
    records = stores.catalog.get_images({r["top1_id"] for r in rows if r["top1_id"] is not None})
    for r in rows:
        rec = records.get(r["top1_id"])
        r["top1_path"] = rec.path if rec else None
    table = robustness_table(rows, list(models), aug.transforms, top_k)
    section = {
        "seed": aug.seed,
        "transforms": aug.transforms,
        "source_side": copies[0].source[3] if copies else None,  # the shorter side copies were made at (at most)
        "originals": len({str(c.original) for c in copies}),
        "copies": [c.describe() for c in copies],
        "rows": rows,
        "skipped_originals": [{"path": p, "reason": r} for p, r in skipped],
        "missing_originals": {m: v for m, v in missing.items() if v},
        "baselines": {m: describe(b) for m, b in bases.items()},
        "margin_z": {m: _median([r.get("true_z") for r in rows if r["model"] == m]) for m in models},
    } | table
    return section, copies


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.median(values)) if values else None
