"""Cross-model comparison from search hits: overlap, Jaccard, rank-biased overlap, distances, label metrics."""

from __future__ import annotations

import math
from collections import defaultdict
from itertools import combinations

import numpy as np

RBO_P = 0.9  # rank-biased overlap persistence: top ranks weigh most


def overlap_at_k(a: list, b: list, k: int) -> float:
    """|top-k(a) ∩ top-k(b)| / k."""
    return len(set(a[:k]) & set(b[:k])) / k if k else 0.0


def jaccard(a: list, b: list) -> float:
    sa, sb = set(a), set(b)
    return len(sa & sb) / len(sa | sb) if sa | sb else 1.0


def rbo(a: list, b: list, p: float = RBO_P) -> float:
    """Extrapolated rank-biased overlap (Webber et al. 2010, eq. 32) of two rankings of equal depth.

    1 for identical rankings, 0 for disjoint ones; agreement at the top counts most.
    """
    k = min(len(a), len(b))
    if k == 0:
        return 1.0 if len(a) == len(b) else 0.0
    seen_a, seen_b, overlap, total = set(), set(), 0, 0.0
    for d in range(1, k + 1):
        x, y = a[d - 1], b[d - 1]
        if x == y:
            overlap += 1
        else:
            overlap += (x in seen_b) + (y in seen_a)
        seen_a.add(x)
        seen_b.add(y)
        total += overlap / d * p**d
    return overlap / k * p**k + (1 - p) / p * total


def kendall_tau_union(a: list, b: list) -> float:
    """Kendall's tau-b of two top-k lists over their union; an item missing from a list ranks after its end.

    1 for identical rankings, -1 for the same items in reverse order; ties (items both lists miss) are
    handled as in tau-b.
    """
    items = list(dict.fromkeys([*a, *b]))
    if len(items) < 2:
        return 1.0
    ra = {x: i for i, x in enumerate(a)}
    rb = {x: i for i, x in enumerate(b)}
    pa = [ra.get(x, len(a)) for x in items]
    pb = [rb.get(x, len(b)) for x in items]
    conc = disc = tie_a = tie_b = 0
    n = len(items)
    for i in range(n):
        for j in range(i + 1, n):
            da, db = pa[i] - pa[j], pb[i] - pb[j]
            if da == 0:
                tie_a += 1
            if db == 0:
                tie_b += 1
            if da * db > 0:
                conc += 1
            elif da * db < 0:
                disc += 1
    pairs = n * (n - 1) // 2
    denom = math.sqrt((pairs - tie_a) * (pairs - tie_b))
    return (conc - disc) / denom if denom else 0.0


def precision_at_k(rels: list[bool], k: int) -> float:
    return sum(rels[:k]) / k


def recall_at_k(rels: list[bool], k: int, n_relevant: int) -> float:
    return sum(rels[:k]) / n_relevant if n_relevant else 0.0


def average_precision_at_k(rels: list[bool], k: int, n_relevant: int) -> float:
    """trec_eval's map_cut_k: precision at each relevant hit within k, divided by all relevant items."""
    if not n_relevant:
        return 0.0
    hits, total = 0, 0.0
    for i, r in enumerate(rels[:k], 1):
        if r:
            hits += 1
            total += hits / i
    return total / n_relevant


def ndcg_at_k(rels: list[bool], k: int, n_relevant: int) -> float:
    """Binary-gain nDCG@k (trec_eval's ndcg_cut_k)."""
    dcg = sum(1 / math.log2(i + 1) for i, r in enumerate(rels[:k], 1) if r)
    ideal = sum(1 / math.log2(i + 1) for i in range(1, min(k, n_relevant) + 1))
    return dcg / ideal if ideal else 0.0


def rankings(hits: list[dict]) -> dict[str, dict[str, list[dict]]]:
    """query -> model -> hits sorted by rank."""
    out: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for h in hits:
        out[h["query"]][h["model"]].append(h)
    for per_model in out.values():
        for lst in per_model.values():
            lst.sort(key=lambda h: h["rank"])
    return {q: dict(m) for q, m in out.items()}


def _stats(values: list[float]) -> dict:
    if not values:
        return {}
    v = np.asarray(values, dtype=np.float64)
    return {
        "n": int(v.size),
        "mean": float(v.mean()),
        "std": float(v.std()),
        "min": float(v.min()),
        "p25": float(np.percentile(v, 25)),
        "median": float(np.median(v)),
        "p75": float(np.percentile(v, 75)),
        "max": float(v.max()),
    }


def compare(
    hits: list[dict], queries: list[dict], models: list[str], top_k: int, label_counts: dict[str, int] | None = None
) -> dict:
    """Per-query and overall comparison; label metrics when queries and hits carry labels.

    ``queries``: [{"query": path, "label": str, "in_dataset": bool}], ``label_counts``: label -> images.
    """
    ranked = rankings(hits)
    qinfo = {q["query"]: q for q in queries}
    per_query, pairs = [], []
    for q in (q["query"] for q in queries):
        per_model = ranked.get(q, {})
        label = qinfo[q].get("label") or ""
        n_rel = 0
        if label and label_counts:
            n_rel = label_counts.get(label, 0) - (1 if qinfo[q].get("in_dataset") and qinfo[q].get("excluded") else 0)
        for m in models:
            hs = per_model.get(m, [])
            cos = [h["cosine"] for h in hs]
            row = {
                "query": q,
                "label": label,
                "model": m,
                "hits": len(hs),
                "top1_cosine": cos[0] if cos else None,
                "mean_cosine": float(np.mean(cos)) if cos else None,
            }
            if label and label_counts:
                rels = [h["label"] == label for h in hs]
                row |= {
                    "relevant": n_rel,
                    "p_at_k": precision_at_k(rels, top_k),
                    "recall_at_k": recall_at_k(rels, top_k, n_rel),
                    "ap_at_k": average_precision_at_k(rels, top_k, n_rel),
                    "ndcg_at_k": ndcg_at_k(rels, top_k, n_rel),
                }
            per_query.append(row)
        for a, b in combinations(models, 2):
            ia = [h["id"] for h in per_model.get(a, [])]
            ib = [h["id"] for h in per_model.get(b, [])]
            pairs.append(
                {
                    "query": q,
                    "model_a": a,
                    "model_b": b,
                    "overlap_at_k": overlap_at_k(ia, ib, top_k),
                    "jaccard": jaccard(ia, ib),
                    "rbo": rbo(ia, ib),
                    "kendall_tau": kendall_tau_union(ia, ib),
                }
            )
    summary = {"top_k": top_k, "queries": len(queries), "models": {}, "pairs": {}}
    for m in models:
        rows = [r for r in per_query if r["model"] == m]
        ms = {
            "top1_cosine": _stats([r["top1_cosine"] for r in rows if r["top1_cosine"] is not None]),
            "topk_cosine": _stats([h["cosine"] for q in ranked.values() for h in q.get(m, [])]),
            "cosine_by_rank": [
                float(np.mean(v)) if v else None
                for v in (
                    [h["cosine"] for q in ranked.values() for h in q.get(m, []) if h["rank"] == r]
                    for r in range(1, top_k + 1)
                )
            ],
        }
        if rows and "p_at_k" in rows[0]:
            for key in ("p_at_k", "recall_at_k", "ap_at_k", "ndcg_at_k"):
                ms[key] = float(np.mean([r[key] for r in rows]))
        summary["models"][m] = ms
    for a, b in combinations(models, 2):
        rows = [p for p in pairs if p["model_a"] == a and p["model_b"] == b]
        worst = sorted(rows, key=lambda p: (p["rbo"], p["query"]))[:5]
        summary["pairs"][f"{a}|{b}"] = {
            "overlap_at_k": float(np.mean([p["overlap_at_k"] for p in rows])) if rows else None,
            "jaccard": float(np.mean([p["jaccard"] for p in rows])) if rows else None,
            "rbo": float(np.mean([p["rbo"] for p in rows])) if rows else None,
            "kendall_tau": float(np.mean([p["kendall_tau"] for p in rows])) if rows else None,
            "most_disagreed": [
                {"query": p["query"], "rbo": p["rbo"], "overlap_at_k": p["overlap_at_k"]} for p in worst
            ],
        }
    return {"summary": summary, "per_query": per_query, "pairs": pairs}
