"""Cross-model comparison from search hits: agreement per pair, distances and label quality per model."""

from __future__ import annotations

from collections import defaultdict
from itertools import combinations

import numpy as np

from .metrics import (
    average_precision_at_k,
    jaccard,
    kendall_tau_union,
    ndcg_at_k,
    overlap_at_k,
    precision_at_k,
    rbo,
    recall_at_k,
)
from .qrels import Qrels, judged_metrics, query_judgments


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
    hits: list[dict],
    queries: list[dict],
    models: list[str],
    top_k: int,
    label_counts: dict[str, int] | None = None,
    qrels: Qrels | None = None,
) -> dict:
    """Per-query and overall comparison; label metrics when queries and hits carry labels.

    ``queries``: [{"query": path, "id": int, "label": str, "in_dataset": bool, "excluded": bool}],
    ``label_counts``: label -> number of catalogued images with it. ``qrels`` (judged relevance, ids as strings)
    take the place of labels when given: the same metric keys plus ``judged_at_k``, on judged queries only.
    """
    ranked = rankings(hits)
    per_query, pairs = [], []
    for q in queries:
        per_model = ranked.get(q["query"], {})
        per_query += [_query_row(q, m, per_model.get(m, []), top_k, label_counts, qrels) for m in models]
        for a, b in combinations(models, 2):
            pairs.append(_pair_row(q["query"], a, b, per_model, top_k))
    summary = {"top_k": top_k, "queries": len(queries), "models": {}, "pairs": {}}
    if qrels is not None:  # which queries the judged metrics stand on, and the rule for unjudged hits
        judged_q = {str(q.get("id")) for q in queries} & set(qrels)
        summary["ground_truth"] = {"kind": "qrels", "judged_queries": len(judged_q), "unjudged_rule": "condensed"}
    elif label_counts:
        summary["ground_truth"] = {"kind": "labels"}
    for m in models:
        summary["models"][m] = _model_summary([r for r in per_query if r["model"] == m], ranked, m, top_k)
    for a, b in combinations(models, 2):
        summary["pairs"][f"{a}|{b}"] = _pair_summary([p for p in pairs if p["model_a"] == a and p["model_b"] == b])
    return {"summary": summary, "per_query": per_query, "pairs": pairs}


def _query_row(
    q: dict, model: str, hs: list[dict], top_k: int, label_counts: dict[str, int] | None, qrels: Qrels | None = None
) -> dict:
    label = q.get("label") or ""
    cos = [h["cosine"] for h in hs]
    row = {
        "query": q["query"],
        "label": label,
        "model": model,
        "hits": len(hs),
        "top1_cosine": cos[0] if cos else None,
        "mean_cosine": float(np.mean(cos)) if cos else None,
    }
    if qrels is not None:  # judged relevance: condensed lists (unjudged hits removed), see qrels.judged_metrics
        judged = query_judgments(qrels, str(q.get("id", "")), bool(q.get("in_dataset") and q.get("excluded")))
        row["ground_truth"] = "qrels"
        if judged is not None:
            row |= {"relevant": sum(1 for g in judged.values() if g >= 1)}
            row |= judged_metrics([str(h["id"]) for h in hs], judged, top_k)
    elif label and label_counts:
        n_rel = label_counts.get(label, 0) - (1 if q.get("in_dataset") and q.get("excluded") else 0)
        rels = [h["label"] == label for h in hs]
        row |= {
            "relevant": n_rel,
            "p_at_k": precision_at_k(rels, top_k),
            "recall_at_k": recall_at_k(rels, top_k, n_rel),
            "ap_at_k": average_precision_at_k(rels, top_k, n_rel),
            "ndcg_at_k": ndcg_at_k(rels, top_k, n_rel),
        }
    return row


def _pair_row(query: str, a: str, b: str, per_model: dict[str, list[dict]], top_k: int) -> dict:
    ia = [h["id"] for h in per_model.get(a, [])]
    ib = [h["id"] for h in per_model.get(b, [])]
    return {
        "query": query,
        "model_a": a,
        "model_b": b,
        "overlap_at_k": overlap_at_k(ia, ib, top_k),
        "jaccard": jaccard(ia, ib),
        "rbo": rbo(ia, ib),
        "kendall_tau": kendall_tau_union(ia, ib),
    }


def _model_summary(rows: list[dict], ranked: dict, m: str, top_k: int) -> dict:
    hits = [h for q in ranked.values() for h in q.get(m, [])]
    ms = {
        "top1_cosine": _stats([r["top1_cosine"] for r in rows if r["top1_cosine"] is not None]),
        "topk_cosine": _stats([h["cosine"] for h in hits]),
        "cosine_by_rank": [
            float(np.mean(v)) if v else None
            for v in ([h["cosine"] for h in hits if h["rank"] == r] for r in range(1, top_k + 1))
        ],
    }
    scored = [r for r in rows if "p_at_k" in r]  # with qrels, only the judged queries are scored
    if scored:
        for key in ("p_at_k", "recall_at_k", "ap_at_k", "ndcg_at_k", "judged_at_k"):
            if key in scored[0]:
                ms[key] = float(np.mean([r[key] for r in scored]))
    top1 = [h for h in hits if h["rank"] == 1 and "percentile" in h]
    if top1:  # calibrated against the model's own baseline (experiment/calibration.py)
        ms["top1_percentile"] = float(np.median([h["percentile"] for h in top1]))
        ms["top1_z"] = float(np.median([h["z"] for h in top1]))
    return ms


def _pair_summary(rows: list[dict]) -> dict:
    def mean(key: str) -> float | None:
        return float(np.mean([p[key] for p in rows])) if rows else None

    worst = sorted(rows, key=lambda p: (p["rbo"], p["query"]))[:5]
    return {
        "overlap_at_k": mean("overlap_at_k"),
        "jaccard": mean("jaccard"),
        "rbo": mean("rbo"),
        "kendall_tau": mean("kendall_tau"),
        "most_disagreed": [{"query": p["query"], "rbo": p["rbo"], "overlap_at_k": p["overlap_at_k"]} for p in worst],
    }
