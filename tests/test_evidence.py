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
    assert ev.interval([0.8], seed=0) == {"mean": 0.8, "low": 0.8, "high": 0.8, "n": 1}
    assert ev.interval([1.0] * 9, seed=0) == {"mean": 1.0, "low": 1.0, "high": 1.0, "n": 9}
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
    assert ev.detectable_difference(0.2, 50) == pytest.approx(2.8016 * 0.2 / np.sqrt(50), rel=1e-4)
    n = ev.queries_needed(0.05, 0.2)
    assert ev.detectable_difference(0.2, n) <= 0.05 < ev.detectable_difference(0.2, n - 1)
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
    assert v["text"].startswith("lite0.int8 — tied with the best, lite0 (P@5 0.843 vs 0.843, p = 1.0), 3.5× faster")
    assert "3.8 MB" in v["text"] and "Too few queries to separate them" in v["text"]
    assert f"{v['detectable']:.3f}" in v["text"] and f"{v['queries_for']['0.05']} queries" in v["text"]
    small = ev.verdict(vals, pairs, metric="p_at_k", metric_label="P@5", cost="file_mb", cost_models=COST)
    assert small["pick"] == "lite0.int8" and "3.8 MB vs 14.0 MB" in small["text"]
