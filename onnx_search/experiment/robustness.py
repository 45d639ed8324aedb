"""Robustness metrics from the rank of each copy's original: recall@1, recall@k, MRR@k, per model x transform."""

from __future__ import annotations

import numpy as np


def rank_metrics(ranks: list[int | None], k: int) -> dict:
    """recall@1, recall@k, MRR@k and the mean rank of the found; ``None`` = the original not in the top k."""
    n = len(ranks)
    found = [r for r in ranks if r is not None and r <= k]
    return {
        "n": n,
        "recall_at_1": sum(r == 1 for r in found) / n if n else None,
        "recall_at_k": len(found) / n if n else None,
        "mrr_at_k": sum(1 / r for r in found) / n if n else None,
        "mean_rank_found": float(np.mean(found)) if found else None,
    }


def robustness_table(rows: list[dict], models: list[str], transforms: list[str], k: int) -> dict:
    """``rows``: {model, transform, rank}. Per model and transform the metrics, per model their mean over
    transforms, and per transform the models that win it (highest recall@1, then MRR@k)."""
    per_model = {}
    for m in models:
        cells = {
            t: rank_metrics([r["rank"] for r in rows if r["model"] == m and r["transform"] == t], k) for t in transforms
        }
        used = [c for c in cells.values() if c["n"]]
        mean = {
            key: float(np.mean([c[key] for c in used])) if used else None
            for key in ("recall_at_1", "recall_at_k", "mrr_at_k")
        }
        per_model[m] = {"transforms": cells, "mean": mean}
    winners = {}
    for t in transforms:
        scores = {
            m: (per_model[m]["transforms"][t]["recall_at_1"], per_model[m]["transforms"][t]["mrr_at_k"]) for m in models
        }
        scores = {m: s for m, s in scores.items() if s[0] is not None}
        best = max(scores.values(), default=None)
        winners[t] = sorted(m for m, s in scores.items() if s == best)
    return {"per_model": per_model, "winners": winners}
