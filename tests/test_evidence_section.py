"""The evidence section resamples the unit that is independent: copies by their original, queries by picture."""

from __future__ import annotations

import numpy as np

from onnx_search.experiment import evidence as ev
from onnx_search.experiment import evidence_section as es
from onnx_search.experiment.compare import compare

MODELS = ["a", "b"]


def _copies_run(n_originals: int = 6, transforms=("identity", "blur", "crop"), seed: int = 0):
    """A copies-only run: every original has one copy per transform; originals o0 and o1 are duplicates."""
    rng = np.random.default_rng(seed)
    copies = [{"original": f"/img/o{i}.jpg", "transform": t, "params": {}} for i in range(n_originals)
              for t in transforms]  # fmt: skip
    rows = [{"copy": c, "model": m, "transform": copies[c]["transform"], "rank": int(rng.integers(1, 4))}
            for c in range(len(copies)) for m in MODELS]  # fmt: skip
    queries = [{"query": f"/img/q{i}.jpg", "id": 100 + i, "label": "", "in_dataset": True, "excluded": True}
               for i in range(4)]  # fmt: skip
    hits = [{"query": q["query"], "model": m, "rank": r, "id": 10 * r + j, "path": "", "label": "",
             "cosine": 1 - r / 10} for q in queries for j, m in enumerate(MODELS) for r in (1, 2, 3)]  # fmt: skip
    results = {
        "queries": queries,
        "robustness": {"rows": rows, "transforms": list(transforms), "copies": copies},
        "duplicates": {"exact": [{"ids": [1, 2], "paths": ["/img/o0.jpg", "/img/o1.jpg"]},
                                 {"ids": [100, 102], "paths": ["/img/q0.jpg", "/img/q2.jpg"]}], "near": []},
    }  # fmt: skip
    return compare(hits, queries, MODELS, 3), results


def test_copy_groups_are_originals_and_duplicates_of_one_picture_are_one():
    c, results = _copies_run()
    g = es.copy_groups(results["robustness"], results)
    assert len(g) == 18 and g[0] == g[1] == g[2]  # the three copies of o0 share a unit
    assert g[3] == g[0]  # o1 is a duplicate of o0: one picture
    assert g[6] == g[7] != g[0] and g[6] != g[9] and len(set(g)) == 5
    q = es.query_groups(c["per_query"], results)
    assert q[0] == q[2] and len(set(q)) == 3  # q0 and q2 are duplicates


def test_build_evidence_passes_the_originals_as_groups(monkeypatch):
    c, results = _copies_run()
    seen: list[tuple[str, object]] = []
    real_pairwise, real_interval = ev.pairwise, ev.interval

    def pairwise(values, *, groups=None, unit=None, **kw):
        seen.append(("pairwise", groups, unit, len(next(iter(values.values())))))
        return real_pairwise(values, groups=groups, unit=unit, **kw)

    def interval(values, *, groups=None, unit=None, **kw):
        if not isinstance(groups, np.ndarray):  # pairwise's own calls pass cluster codes: not ours
            seen.append(("interval", groups, unit, len(values)))
        return real_interval(values, groups=groups, unit=unit, **kw)

    monkeypatch.setattr(ev, "pairwise", pairwise)
    monkeypatch.setattr(ev, "interval", interval)
    e = es.build_evidence(c, results, seed=1)
    expected = es.copy_groups(results["robustness"], results)
    copies_calls = [s for s in seen if s[3] == 18]
    assert copies_calls and all(s[1] == expected and s[2] == "original" for s in copies_calls)
    assert any(s[0] == "pairwise" for s in copies_calls)  # the tests, not only the intervals
    agreement = [s for s in seen if s[0] == "interval" and s[3] == 4]  # per-query agreement: q0 and q2 one unit
    assert agreement and all(s[1] is not None and s[1][0] == s[1][2] for s in agreement)
    assert e["verdict"]["metric"] == "mrr_at_k" and e["method"]["unit"] == "original"
    assert e["method"]["units"]["copies"]["units"] == 5 and e["method"]["units"]["copies"]["values"] == 18
    assert e["pairs"]["mrr_at_k"][0]["units"] == 5 and e["robustness"]["a"]["all"]["mrr_at_k"]["unit"] == "original"


def test_without_a_grouping_nothing_is_grouped():
    c, results = _copies_run(transforms=("identity",))
    results["duplicates"] = {"exact": [], "near": []}
    e = es.build_evidence(c, results, seed=1)
    assert e["method"]["unit"] == "query" and e["pairs"]["mrr_at_k"][0]["units"] == 6
    assert e["method"]["units"]["copies"] == {"unit": "query", "units": 6, "values": 6}


def _null_rejections(grouped: bool, runs: int = 60) -> float:
    """Share of ``runs`` simulated copies runs whose recall@1 test rejects at 0.05: 21 originals x 6 copies, a
    per-original model effect and no difference in expectation. ``grouped`` False: the run names every copy as
    its own original (what counting copies as independent queries amounts to)."""
    rejections = 0
    for s in range(runs):
        rng = np.random.default_rng(1000 + s)
        copies = [{"original": f"/o{i}.jpg", "transform": f"t{t}", "params": {}} for i in range(21) for t in range(6)]
        effect = rng.normal(0, 2.0, 21)  # model a is better on some originals, worse on others
        rows = []
        for ci, cp in enumerate(copies):
            o = int(cp["original"][2:-4])
            for m, shift in (("a", effect[o]), ("b", -effect[o])):
                good = rng.random() < 1 / (1 + np.exp(-(shift + rng.normal(0, 0.3))))
                rows.append({"copy": ci, "model": m, "transform": cp["transform"], "rank": 1 if good else 4})
        if not grouped:
            copies = [{"original": f"/c{i}.jpg"} for i in range(len(copies))]
        results = {"robustness": {"rows": rows, "transforms": [f"t{t}" for t in range(6)], "copies": copies}}
        comp = {"summary": {"models": {"a": {}, "b": {}}, "top_k": 5, "pairs": {}}, "per_query": [], "pairs": []}
        e = es.build_evidence(comp, results, seed=s, resamples=500)
        rejections += e["pairs"]["recall_at_1"][0]["p"] < 0.05
    return rejections / runs


def test_copies_test_is_calibrated_with_a_per_original_effect():
    """Copies counted as independent queries reject a true null far above 5%; resampled by original, the same
    data stay near nominal."""
    assert _null_rejections(grouped=False) > 0.12
    assert _null_rejections(grouped=True) <= 0.08
