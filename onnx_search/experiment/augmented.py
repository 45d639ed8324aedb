"""The augmented-query phase: perturbed copies of sampled images, searched with every model, scored by where
each copy's original lands, with every cosine also placed in its model's baseline (calibration.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..embed.decode import decode, read_bytes
from ..embed.images import embed_images
from ..ids import image_id
from ..models.session import ModelSession
from ..store.stores import Stores
from .augment import Copy, make_copies
from .calibration import baseline, describe, percentile, sample_ids, zscore
from .config import Augment
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


def run_augmented(
    aug: Augment,
    stores: Stores,
    models: dict[str, ModelSession],
    catalogued: list[Path],
    bases: dict[str, np.ndarray],
    top_k: int,
    batch: int = 32,
) -> tuple[dict, list[Copy]]:
    """The robustness section of results.json, and the copies (for the grid of misses)."""
    copies, skipped = make_copies(_pick(catalogued, aug), aug.transforms, aug.seed, lambda p: decode(read_bytes(p)))
    vecs = embed_images(models, [c.image for c in copies], batch)
    originals = [image_id(c.original) for c in copies]
    rows, missing = [], {}
    for m in models:
        stored = stores.fetch_present(m, sorted(set(originals)))
        missing[m] = sorted({str(c.original) for c, o in zip(copies, originals, strict=True) if o not in stored})
        found = stores.search(m, vecs[m], top_k) if len(copies) else []
        base = bases.get(m)
        for i, (c, o, hits) in enumerate(zip(copies, originals, found, strict=True)):
            if o not in stored:
                continue  # reported in missing_originals, left out of the metrics
            ids = [h for h, _ in hits]
            true_cos = float(vecs[m][i] @ stored[o])
            row = {"copy": i, "model": m, "transform": c.transform, "rank": ids.index(o) + 1 if o in ids else None,
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
