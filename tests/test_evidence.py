"""Evidence statistics against references: scipy's bootstrap, an exact sign-flip enumeration, statsmodels' Holm;
the verdict on constructed per-query values."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from onnx_search.experiment import evidence as ev
from onnx_search.experiment.report.format import fmt_iv, fmt_p

# P@5-like per-query values (bounded, tied, skewed), fixed
A = np.array([1.0, 0.8, 1.0, 0.6, 1.0, 1.0, 0.8, 0.4, 1.0, 0.8, 1.0, 0.6, 0.8, 1.0])
B = np.array([0.8, 0.8, 1.0, 0.4, 0.8, 1.0, 0.6, 0.4, 1.0, 0.6, 0.8, 0.6, 0.8, 0.8])


def exact_sign_flip_p(d: np.ndarray) -> float:
    """Two-sided p of the paired randomisation test by enumerating all 2^n sign flips."""
    t = abs(d.mean())
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=d.size)))
    null = np.abs((signs * d).mean(axis=1))
    return float(np.mean(null >= t - 1e-12))


@pytest.mark.parametrize("method", ["percentile", "BCa"])
def test_interval_equals_scipy_bootstrap(method):
    iv = ev.interval(A, seed=7, resamples=3000, method=method)
    ref = stats.bootstrap(
        (A,), np.mean, n_resamples=3000, method=method, confidence_level=0.95, rng=np.random.default_rng(7)
    ).confidence_interval
    assert iv["n"] == A.size and iv["mean"] == pytest.approx(A.mean())
    assert iv["low"] == pytest.approx(ref.low, abs=1e-12) and iv["high"] == pytest.approx(ref.high, abs=1e-12)
    assert iv["low"] < iv["mean"] < iv["high"]
    assert ev.interval(A, seed=7, resamples=3000, method=method) == iv  # seeded: the same every time


def test_interval_degenerate_inputs_never_nan():
    one = {"mean": 0.8, "low": 0.8, "high": 0.8, "n": 1, "unit": "query", "units": 1, "note": "one query"}
    assert ev.interval([0.8], seed=0) == one
    same = ev.interval([1.0] * 9, seed=0)
    assert same == {"mean": 1.0, "low": 1.0, "high": 1.0, "n": 9, "unit": "query", "units": 9, "note": "all equal"}
    assert fmt_iv(same) == "1.000 (all equal)"  # never a bare [1.000, 1.000]
    assert ev.interval([], seed=0)["mean"] is None
    assert ev.interval([1.0, float("nan"), 0.0], seed=0)["n"] == 2  # a query without a value is left out


@pytest.mark.parametrize("n", [3, 8, 12, 14])
def test_sign_flip_p_equals_exact_enumeration(n):
    rng = np.random.default_rng(n)
    a = rng.binomial(5, 0.8, n) / 5
    b = rng.binomial(5, 0.6, n) / 5
    got = ev.paired(a, b, seed=0)
    assert got["p"] == pytest.approx(exact_sign_flip_p(a - b), abs=1e-12)
    assert got["diff"]["mean"] == pytest.approx((a - b).mean())


def test_sign_flip_p_on_fixed_values():
    assert ev.paired(A, B, seed=0)["p"] == pytest.approx(exact_sign_flip_p(A - B), abs=1e-12)
    assert ev.paired(A, A, seed=0)["p"] == 1.0  # no difference at all


def test_paired_interval_resamples_the_same_queries():
    """The paired interval is narrower than two independent ones when the models move together."""
    rng = np.random.default_rng(3)
    difficulty = rng.beta(2, 1, 40)
    a = rng.binomial(10, difficulty) / 10
    b = np.clip(a - rng.binomial(1, 0.2, 40) * 0.1, 0, 1)
    d = ev.paired(a, b, seed=1)["diff"]
    ref = stats.bootstrap(
        (a, b), lambda x, y, axis=-1: x.mean(axis) - y.mean(axis), paired=True, n_resamples=2000,
        method="percentile", rng=np.random.default_rng(1),
    ).confidence_interval  # fmt: skip
    assert d["low"] > 0  # b is never better on any query: the paired interval excludes 0
    assert d["high"] - d["low"] == pytest.approx(ref.high - ref.low, rel=0.2)
    unpaired = ev.interval(a, seed=1)["high"] - ev.interval(a, seed=1)["low"]
    assert d["high"] - d["low"] < unpaired / 2


def test_holm_equals_statsmodels():
    for p in ([0.01, 0.04, 0.03, 0.5], [0.001, 0.2, 0.2, 0.049, 0.9, 0.0125], [0.3], [0.6, 0.6, 0.01]):
        ref = multipletests(p, alpha=0.05, method="holm")[1]
        assert ev.holm(p) == pytest.approx(list(ref), abs=1e-15)
    assert ev.holm([]) == []


def test_power_formulas():
    t = stats.t.ppf(0.975, 49) + stats.t.ppf(0.8, 49)  # the paired t test's power approximation, 49 df
    g = t**2 * 1.05 / 50  # the sign-flip null spreads with sqrt(sd^2 + delta^2): solved for delta
    assert ev.detectable_difference(0.2, 50) == pytest.approx(0.2 * np.sqrt(g / (1 - g)), rel=1e-9)
    assert ev.detectable_difference(0.2, 3) == np.inf  # no difference, however large, reaches 80% power
    n = ev.queries_needed(0.05, 0.2)
    assert ev.detectable_difference(0.2, n) <= 0.05 < ev.detectable_difference(0.2, n - 1)
    n10 = ev.queries_needed(0.05, 0.2, pairs=10)  # Holm's worst case: alpha / 10
    assert ev.detectable_difference(0.2, n10, 0.005) <= 0.05 < ev.detectable_difference(0.2, n10 - 1, 0.005)
    assert n10 > 1.5 * n
    assert ev.units_for_power(1) == 8 and ev.units_for_power(10) == 11  # the exact floor 2/2^n below alpha/m/4
    assert ev.queries_needed(0.9, 0.01) >= 8
    with pytest.raises(ValueError):
        ev.queries_needed(0, 0.2)


def test_pairwise_holm_across_pairs():
    rng = np.random.default_rng(0)
    vals = {"x": A, "y": B, "z": rng.binomial(5, 0.2, A.size) / 5}
    rows = ev.pairwise(vals, seed=0)
    assert [(r["a"], r["b"]) for r in rows] == [("x", "y"), ("x", "z"), ("y", "z")]
    assert [r["p_holm"] for r in rows] == pytest.approx(list(multipletests([r["p"] for r in rows], method="holm")[1]))
    assert [r["significant"] for r in rows] == [r["p_holm"] < 0.05 for r in rows]


def test_formatters():
    assert fmt_iv({"mean": 0.95, "low": 0.8667, "high": 1.0, "n": 12}) == "0.950 [0.867, 1.000]"
    assert fmt_iv(None) == "–" and fmt_iv({"mean": None}) == "–"
    assert [fmt_p(p) for p in (0.0002, 0.0031, 0.04, 0.754, 1.0)] == ["< 0.001", "0.003", "0.04", "0.75", "1.0"]


COST = {
    "lite0": {"img_per_s_model_only": 100.0, "file_mb": 14.0, "query_embed": {"p50_ms": 9.0}},
    "lite0.int8": {"img_per_s_model_only": 350.0, "file_mb": 3.8, "query_embed": {"p50_ms": 4.0}},
    "resnet": {"img_per_s_model_only": 40.0, "file_mb": 98.0, "query_embed": {"p50_ms": 30.0}},
}


def test_verdict_clear_difference_names_one_best():
    rng = np.random.default_rng(5)
    diff = rng.beta(3, 1, 60)
    vals = {"lite0": rng.binomial(10, diff) / 10, "resnet": rng.binomial(10, diff * 0.5) / 10}
    pairs = ev.pairwise(vals, seed=0)
    v = ev.verdict(vals, pairs, metric="p_at_k", metric_label="P@10", cost_models=COST)
    assert v["best"] == "lite0" and v["tied"] == [] and v["pick"] == "lite0" and v["separable"]
    assert pairs[0]["p_holm"] < 0.05
    assert v["text"].startswith("lite0 is the best on P@10") and "better than every other model" in v["text"]


def test_verdict_equal_models_tied_cheapest_picked_with_detectable():
    # every model has the same values, on other queries: equal means, no true difference
    vals = {"lite0": A, "lite0.int8": np.roll(A, 1), "resnet": A[::-1].copy()}
    pairs = ev.pairwise(vals, seed=0)
    v = ev.verdict(vals, pairs, metric="p_at_k", metric_label="P@5", cost_models=COST)
    assert v["best"] == "lite0" and sorted(v["tied"]) == ["lite0.int8", "resnet"] and not v["separable"]
    assert v["pick"] == "lite0.int8"  # the fastest of the tied
    assert v["detectable"] > 0 and set(v["queries_for"]) == {"0.02", "0.05", "0.1"}
    assert v["text"].startswith(
        "lite0.int8 — not shown different from the best, lite0 (P@5 0.843 vs 0.843, Holm-adjusted p 1.0), 3.5× faster"
    )
    assert "3.8 MB" in v["text"] and "Too few queries to separate a difference of 0.05" in v["text"]
    assert "tied" not in v["text"] and v["top_group"] == ["lite0", "lite0.int8", "resnet"]
    assert f"{v['detectable']:.3f}" in v["text"] and f"{v['queries_for']['0.05']} queries" in v["text"]
    small = ev.verdict(vals, pairs, metric="p_at_k", metric_label="P@5", cost="file_mb", cost_models=COST)
    assert small["pick"] == "lite0.int8" and "3.8 MB vs 14.0 MB" in small["text"]
    unmeasured = ev.verdict(vals, pairs, metric="p_at_k", metric_label="P@5")  # cost: null in the YAML
    assert unmeasured["pick"] == "lite0" and unmeasured["text"].startswith(
        "lite0 is the best on P@5 (0.843). Not shown different from the best: lite0.int8 (Holm-adjusted p 1.0), "
        "resnet (Holm-adjusted p 1.0). Too few queries")  # fmt: skip


def test_calibration_by_simulation():
    """1000 seeded synthetic experiments at n = 50 with P@10-like values (binomial hits over Beta(2, 0.8) query
    difficulty), through the code a run uses: size <= 6.5%, power > 80% at 0.5 SD, 95% coverage in 90-97%.
    500 resamples here to keep the test short; bench/evidence_calibration.json has the run's 2000."""
    from onnx_search.bench.evidence_calibration import SHAPES, simulate

    sim = simulate(SHAPES["easy (Beta(2, 0.8), P@k ~0.71)"], experiments=1000, n=50, resamples=500)
    print(f"\ncalibration (n=50, 1000 experiments): {sim}")
    assert sim["null_rejection"] <= 0.065
    assert sim["power_half_sd"] > 0.80
    assert 0.90 <= sim["coverage"][ev.INTERVAL_METHOD] <= 0.97


def _comparison(n_queries: int, shift: float, seed: int = 0) -> tuple[dict, dict]:
    """A comparison built by compare() from constructed hits: 'lite0' and 'lite0.int8' alike, 'resnet' worse by
    ``shift`` per hit; copies for robustness, lite0.int8 a variant of lite0, and measured costs."""
    from onnx_search.experiment.compare import compare

    rng = np.random.default_rng(seed)
    labels = ["a", "b", "c"]
    models = ["lite0", "lite0.int8", "resnet"]
    queries, hits = [], []
    for qi in range(n_queries):
        ql, easy = labels[qi % 3], rng.beta(3, 1)
        queries.append({"query": f"q{qi}", "label": ql, "in_dataset": False, "excluded": False})
        for m in models:
            p = easy - (shift if m == "resnet" else 0.0)
            for r in range(1, 6):
                lab = ql if rng.random() < p else labels[(qi + 1) % 3]
                hits.append(
                    {
                        "query": f"q{qi}",
                        "model": m,
                        "rank": r,
                        "label": lab,
                        "cosine": 0.9 - r / 100,
                        "id": 100 * r + int(rng.integers(0, 99)),
                    }
                )  # fmt: skip (an id once per list)
    c = compare(hits, queries, models, 5, {"a": 30, "b": 30, "c": 30})
    c["cost"] = {"models": COST}
    copies = [{"copy": i, "model": m, "transform": ("identity", "blur")[i % 2], "rank": 1 if rng.random() < 0.8 else 3}
              for i in range(20) for m in models]  # fmt: skip
    results = {
        "variants": {"lite0.int8": {"parent": "lite0", "overlap_at_k": 0.5, "rbo": 0.5, "mean_parent_cosine": 0.99,
                                    "min_parent_cosine": 0.98}},
        "robustness": {"rows": copies, "transforms": ["identity", "blur"]},
    }  # fmt: skip
    return c, results


def test_build_evidence_has_the_contract_shape():
    from onnx_search.experiment.evidence_section import build_evidence

    c, results = _comparison(30, 0.5)
    e = build_evidence(c, results, seed=3)
    assert e["method"]["seed"] == 3 and e["method"]["resamples"] == ev.DEFAULT_RESAMPLES
    assert set(e["quality"]) == {"p_at_k", "recall_at_k", "ap_at_k", "ndcg_at_k"}
    assert e["quality"]["p_at_k"]["lite0"]["mean"] == pytest.approx(c["summary"]["models"]["lite0"]["p_at_k"])
    assert set(e["pairs"]) == {"p_at_k", "recall_at_k", "ap_at_k", "ndcg_at_k", "recall_at_1", "mrr_at_k"}
    assert len(e["pairs"]["p_at_k"]) == 3 and set(e["agreement"]) == set(c["summary"]["pairs"])
    assert set(e["robustness"]["resnet"]) == {"all", "identity", "blur"} and e["robustness"]["resnet"]["all"][
        "recall_at_1"]["n"] == 20  # fmt: skip
    assert e["variants"]["lite0.int8"]["rbo"]["mean"] == pytest.approx(c["summary"]["pairs"]["lite0|lite0.int8"]["rbo"])
    v = e["verdict"]
    assert v["metric"] == "p_at_k" and v["best"] in ("lite0", "lite0.int8") and v["tied"] != ["resnet"]
    assert "resnet" not in v["tied"] and v["pick"] == "lite0.int8"  # worse than the best; int8 the fastest tied
    assert build_evidence(c, results, seed=3) == e  # seeded: the same every time
    copies = build_evidence(c, results, seed=3, metric="mrr_at_k")["verdict"]
    assert copies["metric_label"] == "MRR@5 on copies" and copies["n"] == 20


def test_verdict_without_ground_truth_says_so():
    from onnx_search.experiment.evidence_section import build_evidence

    c, _ = _comparison(10, 0.0)
    for r in c["per_query"]:
        for key in ("p_at_k", "recall_at_k", "ap_at_k", "ndcg_at_k"):
            r.pop(key)
    e = build_evidence(c, {}, seed=0)
    assert e["quality"] == {} and e["pairs"] == {} and e["verdict"]["best"] is None
    assert e["verdict"]["text"].startswith("No verdict on quality: the run has no ground truth")


def test_summary_shows_the_verdict_first_and_every_figure_with_its_interval():
    from onnx_search.experiment.evidence_section import build_evidence
    from onnx_search.experiment.report.format import pair_interval
    from onnx_search.experiment.report.summary import header_lines, summary_markdown

    c, results = _comparison(30, 0.5)
    c["cost"] |= {"images": 4, "repeats": 1, "peak_rss_mb": 10.0}
    for m in c["cost"]["models"].values():
        m |= {"startup_s": 0.1, "img_per_s_end_to_end": 1.0, "search": None, "providers": ["CPUExecutionProvider"]}
        m["query_embed"] |= {"p99_ms": 50.0}
    c["evidence"] = e = build_evidence(c, results, seed=0)
    results |= {"robustness": results["robustness"] | {"originals": 10, "seed": 0, "margin_z": {}, "winners": {},
                "per_model": {m: {} for m in COST}}}  # fmt: skip
    md = summary_markdown(c, header_lines("x", []), results=results)
    assert md.index("## Verdict") < md.index("## Models") and f"**{e['verdict']['text']}**" in md
    models = md.split("## Models")[1].split("##")[0]
    for key in ("p_at_k", "recall_at_k", "ap_at_k", "ndcg_at_k"):
        assert fmt_iv(e["quality"][key]["resnet"]) in models
    assert "Holm-adjusted across the pairs" in models  # the method beside the table
    paired = md.split("## Paired differences")[1].split("\n## ")[0]
    assert "| P@5: a vs b | a − b [Holm-consistent CI] | p | Holm-adjusted p | verdict |" in paired
    assert "Intervals agree with the decisions" in paired and "unadjusted" not in paired
    for r in e["pairs"]["p_at_k"]:
        cell = f"{r['diff_holm']['mean']:.3f} {pair_interval(r['diff_holm'])}"
        assert f"| {r['a']} vs {r['b']} | {cell} | {fmt_p(r['p'])} | {fmt_p(r['p_holm'])} |" in paired
    assert "| lite0 vs resnet |" in paired and "| lite0 better |" in paired.split("| lite0 vs resnet |")[1][:200]
    agree = e["agreement"]["lite0|resnet"]
    assert f"| lite0 vs resnet | {fmt_iv(agree['overlap_at_k'])} |" in md
    assert f"| lite0.int8 | lite0 | {fmt_iv(e['variants']['lite0.int8']['overlap_at_k'])} |" in md
    robust = md.split("## Robustness")[1].split("\n## ")[0]
    assert fmt_iv(e["robustness"]["resnet"]["blur"]["recall_at_1"], 2) in robust
    cost = md.split("## Cost")[1]
    assert fmt_iv(e["quality"]["p_at_k"]["resnet"]) in cost and "significantly better" in cost


def test_verdict_section_in_the_yaml_is_validated(tmp_path):
    from pydantic import ValidationError

    from onnx_search.experiment.config import Experiment

    base = {"experiment": "x", "dataset": {"root": str(tmp_path)}, "models": [{"name": "resnet50"}]}
    exp = Experiment(**base)
    assert (exp.verdict.metric, exp.verdict.cost) == ("auto", "img_per_s")
    assert Experiment(**base, verdict={"metric": "ndcg_at_k", "cost": "file_mb"}).verdict.cost == "file_mb"
    with pytest.raises(ValidationError, match="measured on copies: add queries.augment"):
        Experiment(**base, verdict={"metric": "mrr_at_k"})
    assert Experiment(**base, verdict={"metric": "mrr_at_k"}, queries={"augment": {"sample": 3}}).verdict
    with pytest.raises(ValidationError, match="needs folder labels"):
        Experiment(**(base | {"dataset": {"root": str(tmp_path), "labels": False}}), verdict={"metric": "p_at_k"})
    with pytest.raises(ValidationError, match="cost"):
        Experiment(**base, verdict={"cost": "watts"})
