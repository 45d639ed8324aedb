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
    trec_order,
)
from .qrels import Qrels, judged_metrics, query_judgments


def _score(h: dict) -> float:
    return float(h["cosine"]) if h.get("cosine") is not None else -float(h["rank"])


def rankings(hits: list[dict]) -> dict[str, dict[str, list[dict]]]:
    """query -> model -> hits in trec_eval's order (cosine descending, ties by image id descending as text);
    an image twice in one model's hits of one query is an OnnxSearchError."""
    out: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for h in hits:
        out[h["query"]][h["model"]].append(h)
    for q, per_model in out.items():
        for m, lst in per_model.items():
            lst[:] = trec_order(sorted(lst, key=lambda h: h["rank"]), _score, lambda h: h["id"],
                                f"model {m}'s hits for query {q}")  # fmt: skip
    return {q: dict(m) for q, m in out.items()}


def deep_lists(hits: list[dict], depth: int) -> dict:
    """results["deep_hits"]: {"depth", "lists": query -> model -> [[image id, cosine], ...] in rank order}."""
    lists: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for h in sorted(hits, key=lambda h: h["rank"]):
        lists[h["query"]][h["model"]].append([h["id"], h["cosine"]])
    return {"depth": depth, "lists": {q: dict(m) for q, m in lists.items()}}


def deep_rankings(deep: dict | None) -> dict[tuple[str, str], list[str]]:
    """(query, model) -> image ids of the run's deeper list (results["deep_hits"]), in trec_eval's order."""
    out = {}
    for q, per_model in ((deep or {}).get("lists") or {}).items():
        for m, pairs in per_model.items():
            ordered = trec_order(pairs, lambda p: p[1], lambda p: p[0], f"model {m}'s deep list for query {q}")
            out[q, m] = [str(i) for i, _ in ordered]
    return out


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
    deep: dict | None = None,
) -> dict:
    """Per-query and overall comparison; label metrics when queries and hits carry labels.

    ``queries``: [{"query": path, "id": int, "label": str, "in_dataset": bool, "excluded": bool}],
    ``label_counts``: label -> number of catalogued images with it. ``qrels`` (judged relevance, ids as strings)
    take the place of labels when given: the same metric keys plus ``judged_at_k``, on judged queries only,
    scored on ``deep`` (results["deep_hits"]: each query's ranking deeper than top_k) where it has the query.
    """
    ranked = rankings(hits)
    deeper = deep_rankings(deep) if qrels is not None else {}
    per_query, pairs = [], []
    for q in queries:
        per_model = ranked.get(q["query"], {})
        per_query += [_query_row(q, m, per_model.get(m, []), top_k, label_counts, qrels, deeper.get((q["query"], m)))
                      for m in models]  # fmt: skip
        for a, b in combinations(models, 2):
            pairs.append(_pair_row(q["query"], a, b, per_model, top_k))
    summary = {"top_k": top_k, "queries": len(queries), "models": {}, "pairs": {}}
    if qrels is not None:  # which queries the judged metrics stand on, and the rule for unjudged hits
        judged_q = {str(q.get("id")) for q in queries} & set(qrels)
        summary["ground_truth"] = {"kind": "qrels", "judged_queries": len(judged_q), "unjudged_rule": "condensed",
                                   "judged_depth": _depth(deeper, ranked)}  # fmt: skip
    elif label_counts:
        summary["ground_truth"] = {"kind": "labels"}
    for m in models:
        summary["models"][m] = _model_summary([r for r in per_query if r["model"] == m], ranked, m, top_k)
    for a, b in combinations(models, 2):
        summary["pairs"][f"{a}|{b}"] = _pair_summary([p for p in pairs if p["model_a"] == a and p["model_b"] == b])
    return {"summary": summary, "per_query": per_query, "pairs": pairs}


def _depth(deeper: dict[tuple[str, str], list[str]], ranked: dict) -> int:
    """How deep the lists the judged metrics were computed on go (the longest)."""
    lengths = [len(v) for v in deeper.values()] or [len(h) for q in ranked.values() for h in q.values()]
    return max(lengths, default=0)


def _query_row(
    q: dict,
    model: str,
    hs: list[dict],
    top_k: int,
    label_counts: dict[str, int] | None,
    qrels: Qrels | None = None,
    deep_ids: list[str] | None = None,
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
    if qrels is not None:  # judged relevance: condensed lists (unjudged hits removed) of the deepest list kept
        judged = query_judgments(qrels, str(q.get("id", "")), bool(q.get("in_dataset") and q.get("excluded")))
        row["ground_truth"] = "qrels"
        if judged is not None:
            row |= {"relevant": sum(1 for g in judged.values() if g >= 1)}
            row |= judged_metrics(deep_ids if deep_ids is not None else [str(h["id"]) for h in hs], judged, top_k)
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
