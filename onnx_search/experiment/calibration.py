"""Distances that compare across models: each cosine placed in its model's own baseline distribution.

A raw cosine of 0.99 means little on its own: with some weights every pair of images sits above 0.98. Per model,
the baseline is the cosine between each query and a seeded random sample of the collection (a query's own image
left out). A hit's calibrated score is its percentile in that baseline and its z-score against it; the margin of
a true match is its z-score: how far above an unrelated image it stands, in that model's own units.
"""

from __future__ import annotations

import numpy as np

BASELINE_SAMPLE = 200


def baseline(
    query_vecs: np.ndarray, sample_vecs: np.ndarray, query_ids: list[int], sample_ids: list[int]
) -> np.ndarray:
    """Sorted cosines of every (query, sampled image) pair, pairs of an image with itself left out."""
    cos = query_vecs @ sample_vecs.T
    same = np.asarray(query_ids)[:, None] == np.asarray(sample_ids)[None, :]
    return np.sort(cos[~same].astype(np.float64))


# A hit is often in the baseline's own sample, so its cosine ties with one baseline pair; the two are computed apart
# (the index vs numpy) and differ in the last float32 bits. "At or below" allows this much, so a tie counts the
# same however the rounding fell (the explorer and the run then agree on every hit's percentile).
TIE = 1e-6


def percentile(cos, base: np.ndarray):
    """Share of the baseline at or below ``cos`` (0..1), cosines within ``TIE`` counted as equal."""
    return np.searchsorted(base, np.asarray(cos, np.float64) + TIE, side="right") / len(base)


def zscore(cos, base: np.ndarray):
    std = float(base.std())
    return (np.asarray(cos, np.float64) - float(base.mean())) / (std if std > 0 else 1.0)


def describe(base: np.ndarray) -> dict:
    return {
        "pairs": int(base.size),
        "mean": float(base.mean()),
        "std": float(base.std()),
        "p50": float(np.percentile(base, 50)),
        "p99": float(np.percentile(base, 99)),
    }


def sample_ids(ids: list[int], seed: int, n: int = BASELINE_SAMPLE) -> list[int]:
    """A seeded sample of the collection's ids (sorted first, so the sample does not depend on set order)."""
    ordered = sorted(ids)
    pick = np.random.default_rng(seed).choice(len(ordered), size=min(n, len(ordered)), replace=False)
    return [ordered[i] for i in sorted(pick)]
