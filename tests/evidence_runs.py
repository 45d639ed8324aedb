"""Hand-made run folders with every section that carries evidence (labels or judgments, copies, variants, cost),
computed by the product's own compare/robustness/evidence code from seeded synthetic hits (no stores, no models).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from onnx_search.experiment.compare import compare
from onnx_search.experiment.evidence_section import build_evidence
from onnx_search.experiment.robustness import robustness_table

MODELS = ["alpha", "alpha.int8", "beta"]
STRENGTH = {"alpha": 0.8, "alpha.int8": 0.78, "beta": 0.35}  # chance a hit has the query's label
TRANSFORMS = ["crop", "blur"]


def make_run(
    root: Path,
    name: str,
    *,
    n_queries: int = 20,
    seed: int = 0,
    judged: bool = False,
    dataset: str | None = None,
    queries_from: int = 0,
    copies_seed: int = 0,
    top_k: int = 5,
    reverse: bool = False,
) -> Path:
    """A complete run folder ``root/name`` (results.json, comparison.json with evidence, manifest.json).

    ``queries_from`` shifts which images are queries (another query set); ``copies_seed`` another copy set;
    ``dataset`` another dataset root; ``reverse`` lists the queries in reverse order.
    """
    rng = np.random.default_rng(seed)
    imgs = Path(dataset) if dataset else root / "images"
    labels = ["a", "b", "c"]
    paths = []
    for i in range(30):
        p = imgs / labels[i % 3] / f"{i}.png"
        if not p.exists():
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (24, 24), (40 * (i % 3), 200 - 5 * i, 90)).save(p)
        paths.append(p)
    queries = [
        {"query": str(paths[(j + queries_from) % 30]), "id": 1000 + (j + queries_from) % 30,
         "label": labels[(j + queries_from) % 3], "in_dataset": True, "excluded": True}
        for j in range(n_queries)
    ]  # fmt: skip
    queries = queries[::-1] if reverse else queries
    hits = []
    for q in queries:
        for m in MODELS:
            same = [i for i in range(30) if labels[i % 3] == q["label"] and 1000 + i != q["id"]]
            other = [i for i in range(30) if labels[i % 3] != q["label"]]
            picks: list[int] = []
            for _ in range(top_k):
                pool = same if rng.random() < STRENGTH[m] else other
                pool = [i for i in pool if i not in picks] or [i for i in same + other if i not in picks]
                picks.append(int(rng.choice(pool)))
            for r, i in enumerate(picks, 1):
                hits.append({"query": q["query"], "model": m, "rank": r, "id": 1000 + i, "path": str(paths[i]),
                             "label": labels[i % 3], "distance": 0.1 * r, "cosine": 0.9 - 0.05 * r})  # fmt: skip
    counts = {lb: 10 for lb in labels}
    qrels = None
    if judged:  # every hit judged by its label except one in five (unjudged), grades 2 for even ids
        qrels = {}
        for h in hits:
            q = next(x for x in queries if x["query"] == h["query"])
            if h["id"] % 5:
                rel = (2 if h["id"] % 2 == 0 else 1) if h["label"] == q["label"] else 0
                qrels.setdefault(str(q["id"]), {})[str(h["id"])] = rel
    comparison = compare(hits, queries, MODELS, top_k, None if judged else counts, qrels)
    rows = []
    for c in range(12):
        for m in MODELS:
            rank = None if rng.random() > STRENGTH[m] + 0.1 else int(rng.integers(1, 3))
            rows.append({"copy": c + copies_seed * 100, "model": m, "transform": TRANSFORMS[c % 2], "rank": rank})
    robust = {"seed": copies_seed, "transforms": TRANSFORMS, "originals": 6, "rows": rows, "margin_z": {},
              "copies": [{"original": str(paths[c % 6]), "transform": TRANSFORMS[c % 2], "seed": copies_seed}
                         for c in range(12)]} | robustness_table(rows, MODELS, TRANSFORMS, top_k)  # fmt: skip
    pair = comparison["summary"]["pairs"]["alpha|alpha.int8"]
    results = {
        "experiment": name,
        "dataset_root": str(imgs.resolve()),
        "top_k": top_k,
        "metric": "COSINE",
        "models": MODELS,
        "queries": queries,
        "hits": hits,
        "label_counts": counts,  # the folders still have labels; a judged run scores against the judgments
        "random_weights": [],
        "robustness": robust,
        "variants": {"alpha.int8": {"parent": "alpha", "overlap_at_k": pair["overlap_at_k"], "rbo": pair["rbo"],
                                    "mean_parent_cosine": 0.998, "min_parent_cosine": 0.99}},
    }  # fmt: skip
    if qrels is not None:
        results["qrels"] = qrels
    comparison["cost"] = {"models": {m: {"img_per_s_model_only": s, "query_embed": {"p50_ms": 1000 / s},
                                         "file_mb": mb}
                                     for m, s, mb in (("alpha", 100.0, 20.0), ("alpha.int8", 300.0, 5.0),
                                                      ("beta", 50.0, 90.0))}}  # fmt: skip
    comparison["evidence"] = build_evidence(comparison, results, seed=0, resamples=400)
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "results.json").write_text(json.dumps(results))
    (d / "comparison.json").write_text(json.dumps(comparison))
    (d / "manifest.json").write_text(json.dumps({"status": "complete", "finished_at": "now", "models": {}}))
    return d
