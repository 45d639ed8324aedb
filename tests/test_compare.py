import math

import numpy as np
import pytest

from onnx_search.experiment import compare as c
from onnx_search.experiment import metrics as mt


def test_overlap_and_jaccard_on_known_cases():
    assert mt.overlap_at_k([1, 2, 3, 4], [4, 3, 2, 1], 4) == 1.0
    assert mt.overlap_at_k([1, 2, 3, 4], [5, 6, 7, 8], 4) == 0.0
    assert mt.overlap_at_k([1, 2, 3, 4], [1, 9, 3, 8], 4) == 0.5
    assert mt.jaccard([1, 2, 3, 4], [1, 9, 3, 8]) == pytest.approx(2 / 6)


def test_rbo_known_values():
    assert mt.rbo([1, 2, 3], [1, 2, 3]) == pytest.approx(1.0)
    assert mt.rbo([1, 2, 3], [4, 5, 6]) == 0.0
    # the same set in reverse order agrees less than the same order, but more than disjoint lists
    rev = mt.rbo([1, 2, 3], [3, 2, 1])
    assert 0 < rev < 1
    # by hand, p=0.9, k=3: overlaps X_d = 0, 1, 3 -> (1-p)/p*(0 + 1/2*.81 + 3/3*.729) + 3/3*.729
    assert rev == pytest.approx((0.1 / 0.9) * (0.405 + 0.729) + 0.729)
    # agreement at the top weighs more than at the bottom
    assert mt.rbo([1, 2, 3, 4], [1, 2, 8, 9]) > mt.rbo([1, 2, 3, 4], [8, 9, 3, 4])


def test_label_metrics_by_hand():
    rels = [True, False, True, False]
    assert mt.precision_at_k(rels, 4) == 0.5
    assert mt.recall_at_k(rels, 4, 5) == 0.4
    assert mt.average_precision_at_k(rels, 4, 5) == pytest.approx((1 + 2 / 3) / 5)
    dcg = 1 + 1 / math.log2(4)
    idcg = sum(1 / math.log2(i + 1) for i in range(1, 5))
    assert mt.ndcg_at_k(rels, 4, 5) == pytest.approx(dcg / idcg)


def _random_run(seed=0, n_queries=15, k=10, n_labels=4, per_label=12):
    rng = np.random.default_rng(seed)
    docs = [(i, f"l{i % n_labels}") for i in range(n_labels * per_label)]
    hits, queries = [], []
    for q in range(n_queries):
        qlabel = f"l{q % n_labels}"
        queries.append({"query": f"q{q}", "label": qlabel, "in_dataset": False, "excluded": False})
        for m in ("a", "b"):
            picks = rng.choice(len(docs), size=k, replace=False)
            for rank, d in enumerate(picks, 1):
                hits.append(
                    {
                        "query": f"q{q}",
                        "model": m,
                        "rank": rank,
                        "id": int(docs[d][0]),
                        "label": docs[d][1],
                        "cosine": 1 - rank / 100,
                        "path": f"p{d}",
                    }
                )
    return hits, queries, {f"l{i}": per_label for i in range(n_labels)}, docs


def test_label_metrics_equal_pytrec_eval():
    import pytrec_eval

    k = 10
    hits, queries, counts, docs = _random_run(k=k)
    ours = c.compare(hits, queries, ["a", "b"], k, counts)
    for m in ("a", "b"):
        qrels = {q["query"]: {str(d): int(lbl == q["label"]) for d, lbl in docs} for q in queries}
        run = {
            q["query"]: {
                str(h["id"]): float(k - h["rank"] + 1) for h in hits if h["query"] == q["query"] and h["model"] == m
            }
            for q in queries
        }
        ev = pytrec_eval.RelevanceEvaluator(qrels, {f"P.{k}", f"recall.{k}", f"map_cut.{k}", f"ndcg_cut.{k}"})
        res = ev.evaluate(run)
        rows = {r["query"]: r for r in ours["per_query"] if r["model"] == m}
        for q, measures in res.items():
            assert rows[q]["p_at_k"] == pytest.approx(measures[f"P_{k}"], abs=1e-9)
            assert rows[q]["recall_at_k"] == pytest.approx(measures[f"recall_{k}"], abs=1e-9)
            assert rows[q]["ap_at_k"] == pytest.approx(measures[f"map_cut_{k}"], abs=1e-9)
            assert rows[q]["ndcg_at_k"] == pytest.approx(measures[f"ndcg_cut_{k}"], abs=1e-9)
        assert ours["summary"]["models"][m]["ap_at_k"] == pytest.approx(
            np.mean([v[f"map_cut_{k}"] for v in res.values()]), abs=1e-9
        )


def test_compare_summary_pairs_and_disagreement():
    hits = []
    for q, b_ids in (("q1", [1, 2, 3]), ("q2", [7, 8, 9])):
        for rank, (i, j) in enumerate(zip([1, 2, 3], b_ids, strict=True), 1):
            hits.append({"query": q, "model": "a", "rank": rank, "id": i, "label": "", "cosine": 0.9, "path": ""})
            hits.append({"query": q, "model": "b", "rank": rank, "id": j, "label": "", "cosine": 0.5, "path": ""})
    queries = [{"query": "q1", "label": ""}, {"query": "q2", "label": ""}]
    out = c.compare(hits, queries, ["a", "b"], 3)
    pair = out["summary"]["pairs"]["a|b"]
    assert pair["overlap_at_k"] == 0.5 and pair["most_disagreed"][0]["query"] == "q2"
    assert out["summary"]["models"]["a"]["top1_cosine"]["median"] == pytest.approx(0.9)
    assert "p_at_k" not in out["per_query"][0]


def test_kendall_tau_on_the_union_known_cases():
    assert mt.kendall_tau_union([1, 2, 3], [1, 2, 3]) == pytest.approx(1.0)
    assert mt.kendall_tau_union([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # [1,2] vs [2,1] over union {1,2}: one discordant pair
    assert mt.kendall_tau_union([1, 2], [2, 1]) == pytest.approx(-1.0)
    partial = mt.kendall_tau_union([1, 2, 3], [1, 2, 4])
    assert 0 < partial < 1


def test_kendall_tau_equals_scipy_tau_b():
    from scipy import stats

    rng = np.random.default_rng(1)
    for _ in range(20):
        a = rng.choice(30, size=10, replace=False).tolist()
        b = rng.choice(30, size=10, replace=False).tolist()
        items = list(dict.fromkeys(a + b))
        ra = [a.index(x) if x in a else 10 for x in items]
        rb = [b.index(x) if x in b else 10 for x in items]
        expected = stats.kendalltau(ra, rb, variant="b").statistic
        assert mt.kendall_tau_union(a, b) == pytest.approx(expected, abs=1e-12)


def test_score_ties_are_broken_by_id_as_trec_eval_does():
    """Hits tied on cosine, ranked by the store in ascending id order: the label metrics follow trec_eval's
    order (cosine descending, then id descending as text), so they equal pytrec_eval on the same scores."""
    import pytrec_eval

    k = 4
    queries = [{"query": "q", "label": "x", "in_dataset": False, "excluded": False}]
    tied = [(3, "y", 0.9), (9, "y", 0.8), (10, "x", 0.8), (20, "y", 0.8)]  # store order: 9, 10, 20 (ascending)
    hits = [{"query": "q", "model": "a", "rank": r, "id": i, "label": lab, "cosine": s, "path": ""}
            for r, (i, lab, s) in enumerate(tied, 1)]  # fmt: skip
    ours = c.compare(hits, queries, ["a"], k, {"x": 2, "y": 3})["per_query"][0]
    qrels = {"q": {str(i): int(lab == "x") for i, lab, _ in tied} | {"99": 1}}
    run = {"q": {str(i): s for i, _, s in tied}}
    ref = pytrec_eval.RelevanceEvaluator(qrels, {f"ndcg_cut.{k}", f"map_cut.{k}"}).evaluate(run)["q"]
    assert ours["ndcg_at_k"] == pytest.approx(ref[f"ndcg_cut_{k}"], abs=1e-12)  # "9" > "20" > "10": x is 4th
    assert ours["ap_at_k"] == pytest.approx(ref[f"map_cut_{k}"], abs=1e-12)
    assert ours["ap_at_k"] == pytest.approx(1 / 4 / 2)  # the store's order (x 3rd) would give 1/3/2
