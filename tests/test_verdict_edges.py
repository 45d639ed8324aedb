"""The verdict at the edges: many models, few queries, copies of one original, and the power advice, each checked
against the rule it states (seeded, vectorised simulations through the functions a run uses)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from onnx_search.bench import evidence_calibration as cal
from onnx_search.experiment import evidence as ev
from onnx_search.experiment.report.summary import verdict_lines

EASY = cal.EASY


def _p10(rng, n: int, shifts) -> dict[str, np.ndarray]:
    cols = cal._draw_many(rng, EASY, n, 10, shifts)
    return {("good" if j == 0 else f"weak{j}"): cols[:, j] for j in range(cols.shape[1])}


def _exact(d: np.ndarray) -> float:
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=d.size)))
    return float(np.mean(np.abs(signs @ d) >= abs(d.sum()) - 1e-12))


# --- defect 1: many models, Monte-Carlo floor times Holm's m ---


def test_eleven_models_on_200_queries_separate_a_half_p_at_10_difference():
    rng = np.random.default_rng(11)
    vals = _p10(rng, 200, [0.0] + [0.5] * 10)  # good ~0.71, ten weak ~0.24
    cost = {m: {"img_per_s_model_only": 500.0 if m != "good" else 50.0} for m in vals}  # every weak one is faster
    rows = ev.pairwise(vals, seed=0)
    assert len(rows) == 55 and {r["flips"] for r in rows} == {22000} and rows[0]["test"] == "monte-carlo"
    assert 55 * rows[0]["p_floor"] <= ev.ALPHA / 20  # the smallest Holm-adjusted p sits well below alpha
    assert all(r["significant"] for r in rows if "good" in (r["a"], r["b"]))
    v = ev.verdict(vals, rows, metric="p_at_k", metric_label="P@10", cost_models=cost)
    assert v["best"] == v["pick"] == "good" and v["top_group"] == ["good"] and v["separable"]
    rec = ev.method_record(0, models=11)
    assert rec["flips"] == 22000 and rec["holm_floor"] == pytest.approx(55 / 22001) and rec["pairs"] == 55


def test_flips_agree_with_scipy_permutation_test():
    """The hand-rolled, vectorised sign flips: Monte-Carlo within 4 SE of scipy's, exact equal to scipy's exact."""
    rng = np.random.default_rng(2)
    d = rng.normal(0.12, 1.0, 40)
    ref = stats.permutation_test((d,), np.mean, permutation_type="samples", n_resamples=400_000, vectorized=True,
                                 rng=np.random.default_rng(0)).pvalue  # fmt: skip
    got = ev.sign_flip_p(d, seed=1, resamples=100_000)
    assert abs(got - ref) < 4 * np.sqrt(ref * (1 - ref) / 100_000)
    for n in (5, 9, 12):
        x = rng.normal(0.3, 1.0, n)
        exact = stats.permutation_test((x,), np.mean, permutation_type="samples", n_resamples=np.inf,
                                       vectorized=True).pvalue  # fmt: skip
        assert ev.sign_flip_p(x, seed=0) == pytest.approx(exact, abs=1e-12)
    cols = rng.normal(0.2, 1.0, (12, 3))  # one sign matrix for several pairs: each column's own exact p
    ps, kind = ev.flip_pvalues(cols, seed=0, flips=100)
    assert kind == "exact" and list(ps) == pytest.approx([_exact(cols[:, j]) for j in range(3)], abs=1e-12)
    big = rng.normal(0.05, 1.0, 3000)  # past MAX_FLIPS: the asymptotic sign-flip p
    p_asym, kind = ev.flip_pvalues(big[:, None], seed=0, flips=ev.MAX_FLIPS + 1)
    p_mc, _ = ev.flip_pvalues(big[:, None], seed=0, flips=50_000)
    assert kind == "asymptotic" and p_asym[0] == pytest.approx(p_mc[0], abs=0.01)


# --- defect 2: the pick comes from the top group ---


def _row(a, b, mean, p_holm):
    return {"a": a, "b": b, "diff": {"mean": mean}, "p": p_holm, "p_holm": p_holm, "significant": p_holm < 0.05,
            "sd_diff": 0.2, "unit": "query", "units": 40, "p_floor": 1e-6}  # fmt: skip


def test_pick_comes_from_the_top_group_not_from_those_tied_with_the_best():
    rng = np.random.default_rng(0)
    base = rng.random(40)
    vals = {"A": base + 0.10, "B": base + 0.08, "C": base}
    pairs = [_row("A", "B", 0.02, 0.61), _row("A", "C", 0.10, 0.08), _row("B", "C", 0.08, 0.003)]
    cost = {"A": {"img_per_s_model_only": 10.0}, "B": {"img_per_s_model_only": 20.0},
            "C": {"img_per_s_model_only": 90.0}}  # fmt: skip
    v = ev.verdict(vals, pairs, metric="p_at_k", metric_label="P@10", cost_models=cost)
    assert v["top_group"] == ["A", "B"] and v["tied"] == ["B"] and v["pick"] == "B"  # C is beaten by B
    assert v["text"].startswith("B — not shown different from the best, A (P@10 ")
    assert "Holm-adjusted p 0.61" in v["text"] and "tied" not in v["text"]
    foot = "\n".join(verdict_lines({"verdict": v}))
    assert "Top group: the models no other model beats significantly (Holm-adjusted p < 0.05 over the 3 pairs)" in foot
    assert "the pick is the cheapest of the top group" in foot


# --- defect 3: too few queries; the "same value" text keyed on a zero difference ---


@pytest.mark.parametrize(("n", "models", "need"), [(4, 2, 6), (5, 2, 6), (6, 3, 7)])
def test_too_few_queries_says_so_in_one_line_and_claims_nothing(n, models, need):
    b = np.linspace(0.2, 0.5, n)
    vals = {"better": b + 0.5, **{f"m{j}": b for j in range(1, models)}}  # better by 0.5 on every query
    cost = {m: {"img_per_s_model_only": 1.0 if m == "better" else 9.0} for m in vals}
    v = ev.verdict(vals, ev.pairwise(vals, seed=0), metric="p_at_k", metric_label="P@10", cost_models=cost)
    assert v["pick"] is None and v["detectable"] is None and v["queries_for"] == {}
    assert v["queries_needed_to_separate"] == need and "\n" not in v["text"]
    head = f"Too few queries to decide: with {n} queries no pair of these {models} models can reach Holm-adjusted p"
    assert v["text"].startswith(head) and f"at least {need} queries are needed" in v["text"]
    assert "detects" not in v["text"] and "same value" not in v["text"]


def test_enough_queries_for_the_exact_test_separate_a_constant_difference():
    b = np.linspace(0.2, 0.5, 6)
    v = ev.verdict({"better": b + 0.5, "worse": b}, ev.pairwise({"better": b + 0.5, "worse": b}, seed=0),
                   metric="p_at_k", metric_label="P@10")  # fmt: skip
    assert v["pick"] == "better" and v["separable"] and "better than every other model" in v["text"]


def test_same_value_text_only_for_a_zero_difference():
    rng = np.random.default_rng(4)
    a = rng.binomial(10, rng.beta(2, 0.8, 30)) / 10
    c = np.clip(a - 0.4, 0, 1)
    same = {"a": a, "b": a.copy(), "c": c}
    v = ev.verdict(same, ev.pairwise(same, seed=0), metric="p_at_k", metric_label="P@10")
    assert v["top_group"] == ["a", "b"] and v["text"].endswith("They give the same value on every query.")
    noisy = {"a": a, "b": np.roll(a, 1), "c": c}
    v = ev.verdict(noisy, ev.pairwise(noisy, seed=0), metric="p_at_k", metric_label="P@10")
    assert "b" in v["top_group"] and "same value" not in v["text"]


# --- defect 4: power advice under the same rule as the decision ---


def _separation_rate(models: int, n: int, shift: float, runs: int) -> float:
    rng = np.random.default_rng(n)
    hits = 0
    for e in range(runs):
        sig, _ = cal._decide(cal._draw_many(rng, EASY, n, 10, [0.0] + [shift] * (models - 1)), seed=e, resamples=500)
        hits += bool(sig[0])  # pair (0, 1): the planted difference
    return hits / runs


def test_power_advice_is_at_holms_worst_case_and_holds_by_simulation():
    shift = cal.planted_shift(EASY, 10, 0.3)
    delta, sd = cal._moments(EASY, 10, shift)  # about 0.05 P@10
    advised = ev.queries_needed(delta, sd, pairs=10)  # 5 models
    assert advised > 1.3 * ev.queries_needed(delta, sd)
    assert _separation_rate(5, advised, shift, 300) >= 0.80  # the verdict's own rule, at the advised n
    assert _separation_rate(5, ev.queries_needed(delta, sd), shift, 300) < 0.80  # unadjusted advice falls short


def test_too_few_queries_printed_only_when_underpowered():
    rng = np.random.default_rng(5)
    q = rng.beta(2, 0.8, 400)
    vals = {m: rng.binomial(10, q) / 10 for m in ("x", "y", "z")}  # alike: a well-powered run, nothing separated
    v = ev.verdict(vals, ev.pairwise(vals, seed=0), metric="p_at_k", metric_label="P@10")
    assert v["tied"] and v["queries_for"]["0.05"] <= 400 and v["power_ok"]
    assert "Too few" not in v["text"] and "With 400 queries this run detects differences of" in v["text"]
    assert "80% power at Holm's worst case, alpha 0.05/3" in v["text"]
    small = {m: x[:40] for m, x in vals.items()}
    v = ev.verdict(small, ev.pairwise(small, seed=0), metric="p_at_k", metric_label="P@10")
    assert not v["power_ok"] and "Too few queries to separate a difference of 0.05" in v["text"]


# --- copies of one original: the original is the unit ---


def test_cluster_interval_and_test_resample_the_original():
    rng = np.random.default_rng(6)
    groups = np.repeat(np.arange(10), [1, 2, 3, 4, 5, 1, 2, 3, 4, 5])
    v = rng.random(groups.size)
    iv = ev.interval(v, groups=groups, seed=3, resamples=3000)
    sums, counts = np.bincount(groups, weights=v), np.bincount(groups).astype(float)
    ref = stats.bootstrap((sums, counts), lambda s, c, axis=-1: s.sum(axis) / c.sum(axis), paired=True,
                          n_resamples=3000, method="BCa", rng=np.random.default_rng(3)).confidence_interval  # fmt: skip
    assert (iv["unit"], iv["units"], iv["n"]) == ("original", 10, 30) and iv["mean"] == pytest.approx(v.mean())
    assert (iv["low"], iv["high"]) == pytest.approx((ref.low, ref.high), abs=1e-12)
    a, b = rng.random(groups.size), rng.random(groups.size)
    got = ev.paired(a, b, groups=groups, seed=0)
    assert got["p"] == pytest.approx(_exact(np.bincount(groups, weights=a - b)), abs=1e-12)  # flips per original
    assert got["unit"] == "original" and got["units"] == 10 and got["diff"]["unit"] == "original"
    rows = ev.pairwise({"a": a, "b": b, "c": b + 0.01}, groups=groups, seed=0)
    assert {(r["unit"], r["units"]) for r in rows} == {("original", 10)} and rows[0]["p"] == got["p"]
    assert ev.sign_flip_p(a - b, groups=groups, seed=0) == got["p"]
    assert ev.method_record(0, unit="original")["unit"] == "original"
    with pytest.raises(ValueError, match="one cluster label per value"):
        ev.interval(v, groups=groups[:-1], seed=0)


def test_copies_with_a_per_original_effect_keep_type_one_error_and_coverage():
    """21 originals × 6 copies, a per-original model effect, no average difference: by original the test holds its
    size and the interval its coverage; counted as 126 queries it does neither."""
    row = cal.copies(experiments=600, coverage_experiments=200, seed=1)
    print(row)
    assert row["type1"] <= 0.07 and row["type1_copies_as_queries"] >= 0.09
    assert row["coverage"] >= 0.90 and row["coverage_copies_as_queries"] <= 0.89
    assert row["power_at_advised_n"] >= 0.80 - 2 * (0.8 * 0.2 / 600) ** 0.5  # 80% within two simulation SEs


@pytest.mark.parametrize("n", [3, 4, 5, 6, 9])
def test_few_queries_regime(n):
    row = cal.few_queries(n, experiments=400, seed=n)
    assert row["separable_at_n"] == (n >= 6) and row["type1"] <= 0.065
    assert row["coverage"] >= 0.92 and row["coverage_method"] == "score"  # 95% within 1.5 simulation SEs
    assert row["pair_interval_covers"] >= 0.90
    assert row["advised_n"] >= 8 and row["power_at_advised_n"] >= 0.80


# --- the printed output: p near alpha, one model, pairs equal on every query ---

METHOD = {"confidence": 0.95, "interval": "bootstrap", "resamples": 10, "seed": 0, "test": "sign-flip",
          "test_library": "numpy", "exact_up_to_n": 16, "correction": "Holm"}  # fmt: skip


def test_p_format_never_prints_a_p_on_either_side_of_alpha_as_alpha():
    from onnx_search.experiment.report import format as fm
    from onnx_search.experiment.report.html_evidence import pairs_html
    from onnx_search.experiment.report.summary import paired_tables

    cases = {None: "–", 0.0002: "< 0.001", 0.0031: "0.003", 0.01: "0.01", 0.04: "0.04", 0.04956: "0.0496",
             0.0504: "0.0504", 0.04996: "0.04996", 0.05004: "0.05004", 0.0499999999: "< 0.05", 0.05: "0.05",
             0.0996: "0.0996", 0.754: "0.75", 0.999: "1.0"}  # fmt: skip
    assert {p: fm.fmt_p(p) for p in cases} == cases
    # one function for every output: summary.md's and report.html's pairs tables, the verdict's text
    row = {"a": "x", "b": "y", "p": 0.04956, "p_holm": 0.0504, "significant": False,
           "diff": {"mean": 0.05, "low": -0.01, "high": 0.1}}  # fmt: skip
    md = "\n".join(paired_tables({"pairs": {"p_at_k": [row]}, "method": METHOD}, 10))
    page = pairs_html({"evidence": {"pairs": {"p_at_k": [row]}, "method": METHOD}, "summary": {"top_k": 10}})
    assert "| 0.0496 | 0.0504 | not shown different |" in md
    assert "<td>0.0496</td><td>0.0504</td>" in page
    assert "0.05 |" not in md and "<td>0.05</td>" not in page
    values = {"a": np.array([1.0] * 6 + [0.0] * 14), "b": np.zeros(20)}
    pairs = [{**row, "a": "a", "b": "b", "p_holm": 0.04956, "significant": True, "unit": "query", "units": 20,
              "diff": {"mean": 0.3}, "p_floor": 1e-5, "sd_diff": 0.47}]  # fmt: skip
    v = ev.verdict(values, pairs, metric="p_at_k", metric_label="P@10")
    assert "(Holm-adjusted p ≤ 0.0496)" in v["text"]


def test_one_model_verdict_says_there_is_nothing_to_compare():
    from onnx_search.experiment.report.html_evidence import verdict_html

    v = ev.verdict({"only": np.array([1.0, 0.0, 1.0, 1.0])}, [], metric="p_at_k", metric_label="P@3")
    assert v["pairs_tested"] == 0 and v["pick"] == "only"
    old = {k: x for k, x in v.items() if k != "pairs_tested"}  # a comparison.json saved before pairs_tested
    for verdict in (v, old):
        text = "\n".join(verdict_lines({"verdict": verdict, "method": METHOD}))
        page = verdict_html({"evidence": {"verdict": verdict}})
        assert "Primary metric P@3 on 4 queries. Only one model: there is nothing to compare" in text
        assert "nothing to compare, so no pairs are tested" in page
        for shown in (text, page):
            assert "?" not in shown and "pairs)" not in shown and "attainable" not in shown and "top group" not in shown
    two = ev.verdict({"a": np.ones(8), "b": np.zeros(8)}, ev.pairwise({"a": np.ones(8), "b": np.zeros(8)}, seed=0),
                     metric="p_at_k", metric_label="P@3")  # fmt: skip
    assert "over the 1 pairs" in "\n".join(verdict_lines({"verdict": two, "method": METHOD}))


def test_a_pair_equal_on_every_query_says_so_instead_of_a_zero_width_interval():
    from onnx_search.experiment.report.html_evidence import pairs_html
    from onnx_search.experiment.report.summary import paired_tables

    rng = np.random.default_rng(3)
    base = rng.integers(0, 11, 50) / 10
    values = {"m": base, "m.fp16": base.copy(), "other": np.clip(base - rng.integers(0, 3, 50) / 10, 0, 1)}
    rows = ev.pairwise(values, seed=0)
    same, *differ = rows
    assert (same["a"], same["b"]) == ("m", "m.fp16")
    assert same["diff_holm"].get("note") == same["diff"].get("note") == "equal on every query"
    assert all("note" not in r["diff_holm"] and "note" not in r["diff"] for r in differ)
    evidence = {"pairs": {"p_at_k": rows}, "method": METHOD}
    md = "\n".join(paired_tables(evidence, 10))
    page = pairs_html({"evidence": evidence, "summary": {"top_k": 10}})
    assert "| m vs m.fp16 | 0.000 (equal on every query) | 1.0 | 1.0 | not shown different |" in md
    assert "<td>m.fp16</td><td>0.000<span class='ci'>(equal on every query)</span></td>" in page
    assert "[0.000, 0.000]" not in md + page
    for r in differ:  # the others keep their intervals
        assert f"| {r['a']} vs {r['b']} | {r['diff_holm']['mean']:.3f} [" in md or r["significant"]
