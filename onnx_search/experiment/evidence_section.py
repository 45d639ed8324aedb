"""comparison["evidence"]: every quality figure of a run with its interval, every pair of models tested on the
same queries (Holm across pairs), agreement and variant intervals, and the verdict (evidence.py does the maths)."""

from __future__ import annotations

import inspect

import numpy as np

from . import evidence as ev

QUALITY = {"p_at_k": "P@{k}", "recall_at_k": "R@{k}", "ap_at_k": "mAP@{k}", "ndcg_at_k": "nDCG@{k}",
           "judged_at_k": "judged@{k}"}  # fmt: skip
TESTED = ("p_at_k", "recall_at_k", "ap_at_k", "ndcg_at_k")  # judged@k is coverage of the judgments, not quality
COPIES = {"recall_at_1": "recall@1 on copies", "mrr_at_k": "MRR@{k} on copies"}
AGREEMENT = ("overlap_at_k", "rbo")
METRIC_BOUNDS = (0.0, 1.0)  # P@k, R@k, mAP, nDCG, judged@k, recall@1, MRR, overlap@k, RBO


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


def _grouped(fn, groups, unit: str | None = None) -> dict:
    """``{"groups": groups, "unit": unit}`` when there is a grouping (some unit holds several values) and ``fn``
    takes it (each keyword only if ``fn`` has it)."""
    params = inspect.signature(fn).parameters
    if groups is None or len(set(groups)) == len(groups) or "groups" not in params:
        return {}
    return {"groups": list(groups)} | ({"unit": unit} if unit and "unit" in params else {})


def _intervals(values: dict[str, np.ndarray], seed: int, resamples: int, groups=None, unit=None) -> dict[str, dict]:
    """Each figure's interval; every quality, copies and agreement figure lies in [0, 1] (METRIC_BOUNDS)."""
    grouped = _grouped(ev.interval, groups, unit)
    return {
        m: ev.interval(v, seed=seed, resamples=resamples, bounds=METRIC_BOUNDS, **grouped) for m, v in values.items()
    }


def _same_picture(results: dict) -> dict[str, str]:
    """image id and path -> one label per picture: the duplicate report's groups (exact and near, merged)."""
    dups = results.get("duplicates") or {}
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for g in [*(dups.get("exact") or []), *(dups.get("near") or [])]:
        ids = [str(i) for i in g.get("ids", [])]
        for a, b in zip(ids, ids[1:], strict=False):
            parent[find(b)] = find(a)
        for i, p in zip(ids, g.get("paths", []), strict=False):
            if p:
                parent[find(p)] = find(i)
    return {x: "pic:" + find(x) for x in list(parent)}


def query_groups(per_query: list[dict], results: dict) -> list[str]:
    """The independent unit of each query, in the order of ``per_query_values``: its picture (queries that are
    the same image or duplicates of one another form one unit), else the query itself."""
    same = _same_picture(results)
    ids = {q["query"]: str(q.get("id", "")) for q in results.get("queries") or []}
    queries = list(dict.fromkeys(r["query"] for r in per_query))
    return [same.get(ids.get(q, ""), same.get(q, "id:" + ids[q] if ids.get(q) else q)) for q in queries]


def copy_groups(robust: dict, results: dict) -> list[str]:
    """The independent unit of each copy (index = the rows' ``copy``): its original, by picture (two originals
    that are duplicates of one another are one unit)."""
    same = _same_picture(results)
    return [same.get(c["original"], c["original"]) for c in robust.get("copies") or []]


QUERY_UNIT = "picture"  # queries that show one picture (the same image, or duplicates) are one unit
COPY_UNIT = "original"  # a copy's unit is its original: the copies of one original are resampled together


def _units(n: int, groups: list[str] | None, what: str, unit: str) -> dict:
    """What one resampled unit is, and how many there are."""
    k = len(set(groups)) if groups else n
    if k == n:
        return {"unit": "query", "units": n, "values": n}  # each value its own unit (a copy is a query too)
    return {"unit": unit, "units": k, "values": n, "text": f"{k} {unit}s of {n} {what}, each resampled with its {what}"}


def _method(seed: int, resamples: int, models: int, unit: str) -> dict:
    """The method block, with the family size and the unit where ``evidence.method_record`` takes them."""
    params = inspect.signature(ev.method_record).parameters
    extra = ({"models": models} if "models" in params else {}) | ({"unit": unit} if "unit" in params else {})
    return ev.method_record(seed, resamples, **extra) | {"unit": unit}


def _pair_groups(pair_rows: list[dict], a: str, b: str, by_query: dict[str, str]) -> list[str]:
    return [by_query.get(p["query"], p["query"]) for p in pair_rows if {p["model_a"], p["model_b"]} == {a, b}]


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
    out: dict = {"quality": {}, "pairs": {}, "agreement": {}}
    values: dict[str, dict[str, np.ndarray]] = {}
    groups: dict[str, list[str] | None] = {}  # metric -> the independent unit of each value
    qgroups = query_groups(rows, results)
    queries = list(dict.fromkeys(r["query"] for r in rows))
    by_query = dict(zip(queries, qgroups, strict=True))
    units = {"queries": _units(len(queries), qgroups, "queries", QUERY_UNIT)}
    for key in QUALITY:
        vals = per_query_values(rows, models, key)
        if any(np.any(~np.isnan(v)) for v in vals.values()):
            values[key] = vals
            groups[key] = qgroups
            out["quality"][key] = _intervals(vals, seed, resamples, qgroups, QUERY_UNIT)
    robust = results.get("robustness") or {}
    if robust.get("rows"):
        out["robustness"] = {}
        overall = copy_values(robust["rows"], models, k)
        cgroups = copy_groups(robust, results)
        size = len(next(iter(overall["recall_at_1"].values())))
        cgroups = (cgroups + [f"copy:{i}" for i in range(len(cgroups), size)])[:size]
        units["copies"] = _units(size, cgroups, "copies", COPY_UNIT)
        values |= overall
        groups |= dict.fromkeys(COPIES, cgroups)
        for m in models:
            cell = {"all": _intervals({key: overall[key][m] for key in COPIES}, seed, resamples, cgroups, COPY_UNIT)}
            for t in robust.get("transforms", []):
                per_t = copy_values(robust["rows"], [m], k, t)
                cell[t] = _intervals({key: per_t[key][m] for key in COPIES}, seed, resamples, cgroups, COPY_UNIT)
            out["robustness"][m] = cell

    def unit_of(key: str) -> str:
        return COPY_UNIT if key in COPIES else QUERY_UNIT

    for key in (*TESTED, *COPIES):
        if key in values and len(models) > 1:
            out["pairs"][key] = ev.pairwise(values[key], seed=seed, resamples=resamples,
                                            **_grouped(ev.pairwise, groups.get(key), unit_of(key)))  # fmt: skip
    for pair in comparison["summary"]["pairs"]:
        a, b = pair.split("|")
        pg = _pair_groups(comparison["pairs"], a, b, by_query)
        out["agreement"][pair] = _intervals({key: _pair_values(comparison["pairs"], a, b, key) for key in AGREEMENT},
                                            seed, resamples, pg, QUERY_UNIT)  # fmt: skip
    variants = results.get("variants") or {}
    if variants:
        out["variants"] = {
            name: _intervals({key: _pair_values(comparison["pairs"], v["parent"], name, key) for key in AGREEMENT},
                             seed, resamples, _pair_groups(comparison["pairs"], v["parent"], name, by_query),
                             QUERY_UNIT)
            for name, v in variants.items()
        }  # fmt: skip
    chosen = default_metric(comparison, results) if metric == "auto" else metric
    main = units["copies" if chosen in COPIES else "queries"] if chosen in values else units["queries"]
    out = {"method": _method(seed, resamples, len(models), main["unit"]) | {"units": units}} | out
    if chosen in values:
        out["verdict"] = ev.verdict(
            values[chosen], out["pairs"].get(chosen, []), metric=chosen, metric_label=metric_label(chosen, k),
            cost=cost, cost_models=(comparison.get("cost") or {}).get("models"),
            **_grouped(ev.verdict, groups.get(chosen)),
        )  # fmt: skip
    else:
        what = "no ground truth (folder labels, judgments or copies)" if chosen is None else f"no {chosen} values"
        out["verdict"] = {"metric": chosen, "metric_label": metric_label(chosen or "", k), "best": None, "tied": [],
                          "pick": None, "cost": cost, "separable": False, "detectable": None, "queries_for": {},
                          "text": f"No verdict on quality: the run has {what}; the agreement figures below say "
                          "how alike the models rank, not which is right."}  # fmt: skip
    return out
