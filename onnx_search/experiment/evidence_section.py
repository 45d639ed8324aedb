"""comparison["evidence"]: every quality figure of a run with its interval, every pair of models tested on the
same queries (Holm across pairs), agreement and variant intervals, and the verdict (evidence.py does the maths)."""

from __future__ import annotations

import numpy as np

from . import evidence as ev

QUALITY = {"p_at_k": "P@{k}", "recall_at_k": "R@{k}", "ap_at_k": "mAP@{k}", "ndcg_at_k": "nDCG@{k}",
           "judged_at_k": "judged@{k}"}  # fmt: skip
TESTED = ("p_at_k", "recall_at_k", "ap_at_k", "ndcg_at_k")  # judged@k is coverage of the judgments, not quality
COPIES = {"recall_at_1": "recall@1 on copies", "mrr_at_k": "MRR@{k} on copies"}
AGREEMENT = ("overlap_at_k", "rbo")


def metric_label(metric: str, k: int) -> str:
    return (QUALITY | COPIES).get(metric, metric).format(k=k)


def per_query_values(per_query: list[dict], models: list[str], key: str) -> dict[str, np.ndarray]:
    """model -> its value of ``key`` per query, in the run's query order (NaN where a query has none)."""
    queries = list(dict.fromkeys(r["query"] for r in per_query))
    pos = {q: i for i, q in enumerate(queries)}
    out = {m: np.full(len(queries), np.nan) for m in models}
    for r in per_query:
        v = r.get(key)
        if r["model"] in out and isinstance(v, (int, float)):
            out[r["model"]][pos[r["query"]]] = float(v)
    return out


def copy_values(rows: list[dict], models: list[str], k: int, transform: str | None = None) -> dict[str, dict]:
    """recall@1 and MRR@k per copy (one value per copy, NaN where a model lacks the original), by model."""
    size = 1 + max((r["copy"] for r in rows), default=-1)
    out = {key: {m: np.full(size, np.nan) for m in models} for key in COPIES}
    for r in rows:
        if r["model"] not in models or (transform is not None and r["transform"] != transform):
            continue
        rank = r["rank"]
        out["recall_at_1"][r["model"]][r["copy"]] = float(rank == 1)
        out["mrr_at_k"][r["model"]][r["copy"]] = 1.0 / rank if rank is not None and rank <= k else 0.0
    return out


def _intervals(values: dict[str, np.ndarray], seed: int, resamples: int) -> dict[str, dict]:
    return {m: ev.interval(v, seed=seed, resamples=resamples) for m, v in values.items()}


def _pair_values(pair_rows: list[dict], a: str, b: str, key: str) -> np.ndarray:
    return np.array([p[key] for p in pair_rows if {p["model_a"], p["model_b"]} == {a, b}], dtype=np.float64)


def default_metric(comparison: dict, results: dict) -> str | None:
    """nDCG@k on judgments, P@k on folder labels, MRR@k on copies; None when the run has no ground truth."""
    rows = comparison["per_query"]
    if (comparison["summary"].get("ground_truth") or {}).get("kind") == "qrels":
        return "ndcg_at_k"
    if any("p_at_k" in r for r in rows):
        return "p_at_k"
    if (results.get("robustness") or {}).get("rows"):
        return "mrr_at_k"
    return None


def build_evidence(
    comparison: dict,
    results: dict,
    *,
    seed: int,
    metric: str = "auto",
    cost: str = "img_per_s",
    resamples: int = ev.DEFAULT_RESAMPLES,
) -> dict:
    """The evidence section (see /work/notes/evidence-contract.md for its shape)."""
    models = list(comparison["summary"]["models"])
    k = comparison["summary"]["top_k"]
    rows = comparison["per_query"]
    out: dict = {"method": ev.method_record(seed, resamples), "quality": {}, "pairs": {}, "agreement": {}}
    values: dict[str, dict[str, np.ndarray]] = {}
    for key in QUALITY:
        vals = per_query_values(rows, models, key)
        if any(np.any(~np.isnan(v)) for v in vals.values()):
            values[key] = vals
            out["quality"][key] = _intervals(vals, seed, resamples)
    robust = results.get("robustness") or {}
    if robust.get("rows"):
        out["robustness"] = {}
        overall = copy_values(robust["rows"], models, k)
        values |= overall
        for m in models:
            cell = {"all": {key: ev.interval(overall[key][m], seed=seed, resamples=resamples) for key in COPIES}}
            for t in robust.get("transforms", []):
                per_t = copy_values(robust["rows"], [m], k, t)
                cell[t] = {key: ev.interval(per_t[key][m], seed=seed, resamples=resamples) for key in COPIES}
            out["robustness"][m] = cell
    for key in (*TESTED, *COPIES):
        if key in values and len(models) > 1:
            out["pairs"][key] = ev.pairwise(values[key], seed=seed, resamples=resamples)
    for pair in comparison["summary"]["pairs"]:
        a, b = pair.split("|")
        out["agreement"][pair] = {
            key: ev.interval(_pair_values(comparison["pairs"], a, b, key), seed=seed, resamples=resamples)
            for key in AGREEMENT
        }
    variants = results.get("variants") or {}
    if variants:
        out["variants"] = {
            name: {key: ev.interval(_pair_values(comparison["pairs"], v["parent"], name, key), seed=seed,
                                    resamples=resamples) for key in AGREEMENT}
            for name, v in variants.items()
        }  # fmt: skip
    chosen = default_metric(comparison, results) if metric == "auto" else metric
    if chosen in values:
        out["verdict"] = ev.verdict(
            values[chosen], out["pairs"].get(chosen, []), metric=chosen, metric_label=metric_label(chosen, k),
            cost=cost, cost_models=(comparison.get("cost") or {}).get("models"),
        )  # fmt: skip
    else:
        what = "no ground truth (folder labels, judgments or copies)" if chosen is None else f"no {chosen} values"
        out["verdict"] = {"metric": chosen, "metric_label": metric_label(chosen or "", k), "best": None, "tied": [],
                          "pick": None, "cost": cost, "separable": False, "detectable": None, "queries_for": {},
                          "text": f"No verdict on quality: the run has {what}; the agreement figures below say "
                          "how alike the models rank, not which is right."}  # fmt: skip
    return out
